"""Sessions over HTTP: the X-Snakepit-Session and X-Snakepit-Session-Mode
headers on tool calls (streaming ones too), DELETE /v1/pools/P/sessions/ID,
the status codes of session_busy (409) and session_lost (410), the stats and
/metrics, and bad session ids and modes (400, and the server keeps serving)."""

import json
import os
import signal
import threading
import time

import pytest

from conftest import Server, error_of, pool_yaml

ADAPTER = "session_adapter.SessionAdapter"


@pytest.fixture(scope="module", params=["0", "2"], ids=["http-on-loop", "http-2-threads"])
def srv(request, tmp_path_factory):
    """`sp` process 2x1 and `st` thread 2x2, both running the session adapter."""
    config = ("pools:\n" + pool_yaml("sp", size=2, adapter=ADAPTER)
              + pool_yaml("st", "thread", threads=2, size=2, adapter=ADAPTER))
    s = Server(tmp_path_factory.mktemp("sessions"), config, "--http-threads", request.param)
    yield s
    assert s.stop() == 0, s.stderr()


def hdrs(session=None, mode=None):
    h = {}
    if session is not None:
        h["X-Snakepit-Session"] = session
    if mode is not None:
        h["X-Snakepit-Session-Mode"] = mode
    return h


def call(srv, pool, tool, args=None, session=None, mode=None):
    status, _, body = srv.call(pool, tool, args, headers=hdrs(session, mode))
    return status, json.loads(body)


def ok(srv, pool, tool, args=None, session=None, mode=None):
    status, doc = call(srv, pool, tool, args, session, mode)
    assert status == 200, doc
    return doc


@pytest.mark.parametrize("pool", ["sp", "st"])
def test_calls_of_a_session_share_one_worker_and_its_state(srv, pool):
    sid = f"http-affinity-{pool}"
    first = ok(srv, pool, "add", {"x": 1}, sid)
    for i in range(2, 12):
        doc = ok(srv, pool, "add", {"x": 1}, sid, "strict")
        assert doc["pid"] == first["pid"] and doc["total"] == i
        assert doc["session_id"] == sid
    # ?session= does the same as the header.
    status, _, body = srv.request("POST", f"/v1/pools/{pool}/tools/peek?session={sid}", "{}")
    assert status == 200 and json.loads(body)["total"] == 11
    plain = ok(srv, pool, "peek")
    assert plain["session_id"] is None and plain["has_state"] is False


@pytest.mark.parametrize("pool", ["sp", "st"])
def test_delete_ends_a_session(srv, pool):
    sid = f"http-end-{pool}"
    for _ in range(3):
        ok(srv, pool, "add", {}, sid)
    status, _, body = srv.request("DELETE", f"/v1/pools/{pool}/sessions/{sid}")
    assert status == 200, body
    assert json.loads(body) == {"pool": pool, "session": sid, "ended": True}
    assert ok(srv, pool, "add", {}, sid)["total"] == 1
    # Ending again, or one that never existed, is fine; an unknown pool is not.
    status, _, _ = srv.request("DELETE", f"/v1/pools/{pool}/sessions/never-there")
    assert status == 200
    status, _, body = srv.request("DELETE", "/v1/pools/nope/sessions/x")
    error_of(status, body, 404, "pool", "SP_ENOPOOL")
    # Only DELETE on that path.
    status, headers, _ = srv.request("GET", f"/v1/pools/{pool}/sessions/{sid}")
    assert status == 405 and headers["allow"] == "DELETE"


def hold_in_background(srv, pool, sid, n, seconds):
    results = []

    def run():
        results.append(call(srv, pool, "hold", {"seconds": seconds}, sid, "strict"))
    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if srv.get_json(f"/v1/pools/{pool}")["busy_slots"] >= n:
            break
        time.sleep(0.01)
    return threads, results


@pytest.mark.parametrize("pool,threads", [("sp", 1), ("st", 2)])
def test_busy_and_lost_sessions_map_to_409_and_410(srv, pool, threads):
    sid = f"http-busy-{pool}"
    pid = ok(srv, pool, "add", {}, sid)["pid"]
    bg, results = hold_in_background(srv, pool, sid, threads, 1.5)
    t0 = time.monotonic()
    status, _, body = srv.call(pool, "peek", {}, headers=hdrs(sid, "strict_fail_fast"))
    fast = time.monotonic() - t0
    err = error_of(status, body, 409, "pool", "SP_ESESSIONBUSY")
    assert f"session '{sid}'" in err["message"] and f"pool '{pool}'" in err["message"]
    # hint goes elsewhere at once, on a fresh state.
    doc = ok(srv, pool, "peek", {}, sid, "hint")
    assert doc["pid"] != pid and doc["total"] == 0
    for t in bg:
        t.join()
    assert all(s == 200 for s, _ in results)
    assert fast < 1.5 * 0.3
    # The worker dies: strict calls get 410 naming the session.
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while srv.get_json(f"/v1/pools/{pool}")["sessions"]["lost"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    status, _, body = srv.call(pool, "peek", {}, headers=hdrs(sid, "strict"))
    err = error_of(status, body, 410, "worker", "SP_ESESSIONLOST")
    assert f"session '{sid}'" in err["message"] and "killed by signal 9" in err["message"]
    status, _, _ = srv.request("DELETE", f"/v1/pools/{pool}/sessions/{sid}")
    assert status == 200
    assert ok(srv, pool, "add", {}, sid, "strict")["total"] == 1


@pytest.mark.parametrize("accept", ["text/event-stream", "application/x-ndjson"])
def test_streams_run_in_the_session(srv, accept):
    sid = "http-stream-" + accept.split("/")[1]
    ok(srv, "st", "add", {"x": 10}, sid)
    h = hdrs(sid, "strict")
    h["Accept"] = accept
    status, _, body = srv.request("POST", "/v1/pools/st/tools/stream_add", json.dumps({"n": 3}), h)
    assert status == 200
    totals = [int(t.split(",")[0].split("}")[0]) for t in body.decode().split('"total":')[1:]]
    assert totals == [11, 12, 13], body
    assert ok(srv, "st", "peek", {}, sid)["total"] == 13


def test_stats_and_metrics_show_sessions(srv):
    for i in range(3):
        ok(srv, "sp", "add", {}, f"http-stats-{i}")
    stats = srv.get_json("/v1/pools/sp")
    live = stats["sessions"]["live"]
    assert live >= 3
    # A session lost with its worker stays listed (strict calls say so) but is bound to none.
    lost_now = sum(1 for s in stats["sessions"]["list"] if s["lost"])
    assert sum(w["sessions"] for w in stats["workers"]) == live - lost_now
    ids = {s["id"] for s in stats["sessions"]["list"]}
    assert {"http-stats-0", "http-stats-1", "http-stats-2"} <= ids
    status, _, body = srv.request("GET", "/metrics")
    assert status == 200
    text = body.decode()
    assert f'snakepit_pool_sessions{{pool="sp"}} {live}' in text
    assert "snakepit_worker_sessions{" in text
    assert "# TYPE snakepit_sessions_lost_total counter" in text


@pytest.mark.parametrize("value,why", [
    ("", "is empty"),
    ("x" * 129, "longer than 128 bytes"),
    ("a\tb", "control character (U+0009) at byte 1"),
])
def test_bad_session_ids_are_refused(srv, value, why):
    status, _, body = srv.call("sp", "peek", {}, headers={"X-Snakepit-Session": value})
    err = error_of(status, body, 400, "validation", "SP_EINVAL")
    assert why in err["message"] and "X-Snakepit-Session" in err["message"], err
    assert ok(srv, "sp", "peek")["session_id"] is None


def test_non_utf8_session_id_is_refused(srv):
    # http.client sends str headers as Latin-1: a raw 0xff byte.
    status, _, body = srv.call("sp", "peek", {}, headers={"X-Snakepit-Session": "caf\xff"})
    err = error_of(status, body, 400, "validation", "SP_EINVAL")
    assert "not valid UTF-8 (byte 3)" in err["message"], err


def test_unknown_session_mode_is_refused(srv):
    status, _, body = srv.call("sp", "peek", {}, headers=hdrs("m", "sticky"))
    err = error_of(status, body, 400, "validation", "SP_EINVAL")
    assert "'sticky'" in err["message"] and "X-Snakepit-Session-Mode" in err["message"]
    # Streaming calls check it too.
    h = hdrs("m", "sticky")
    h["Accept"] = "text/event-stream"
    status, _, body = srv.request("POST", "/v1/pools/st/tools/stream_add", "{}", h)
    assert status == 400 and b"sticky" in body
    assert ok(srv, "sp", "add", {}, "m", "strict_fail_fast")["total"] >= 1


def test_session_mode_without_a_session_is_refused(srv):
    status, _, body = srv.call("sp", "peek", {}, headers={"X-Snakepit-Session-Mode": "strict"})
    err = error_of(status, body, 400, "validation", "SP_EINVAL")
    assert "needs a session" in err["message"]


def test_bad_id_in_delete_path_is_refused(srv):
    status, _, body = srv.request("DELETE", "/v1/pools/sp/sessions/a%09b")
    err = error_of(status, body, 400, "validation", "SP_EINVAL")
    assert "control character" in err["message"]
