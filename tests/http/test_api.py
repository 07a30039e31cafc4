"""`snakepit serve` endpoints and the error reply of every failure a call can have.

Every test talks HTTP/1.1 to a real server with real workers (fixture `server`
in conftest.py) and checks status codes, headers and JSON bodies.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import error_of, send


# ---- tool calls -------------------------------------------------------------

def test_call_returns_the_result(server):
    status, headers, body = server.call("tp", "add", {"a": 2, "b": 3})
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == 5
    status, _, body = server.call("tt", "echo", {"value": {"k": [1, "two", None]}})
    assert status == 200 and json.loads(body) == {"k": [1, "two", None]}


def test_empty_body_means_no_arguments(server):
    status, _, body = server.request("POST", "/v1/pools/tp/tools/noop", body=b"")
    assert status == 200 and json.loads(body) is None


def test_keep_alive_serves_many_requests_on_one_connection(server):
    c = server.conn()
    try:
        for i in range(20):
            status, headers, body = send(c, "POST", "/v1/pools/tt/tools/add", json.dumps({"a": i, "b": 1}))
            assert status == 200 and json.loads(body) == i + 1
            assert headers.get("connection", "").lower() != "close"
        first_sock = c.sock
        status, _, _ = send(c, "GET", "/healthz")
        assert status == 200 and c.sock is first_sock, "the connection was not kept alive"
    finally:
        c.close()


def test_concurrent_calls_each_get_their_own_result(server):
    def one(i):
        status, _, body = server.call("tt", "echo", {"value": i})
        return status, json.loads(body)

    with ThreadPoolExecutor(32) as ex:
        results = list(ex.map(one, range(96)))
    assert results == [(200, i) for i in range(96)]


def test_python_exception_is_500_with_type_and_traceback(server):
    status, _, body = server.call("tp", "fail", {"message": "kaboom"})
    err = error_of(status, body, 500, "python", "SP_EPYTHON")
    assert err["python_type"] == "ValueError"
    assert "kaboom" in err["message"]
    assert "Traceback" in err["traceback"] and "ValueError: kaboom" in err["traceback"]


def test_worker_crash_is_500_and_the_pool_recovers(server):
    status, _, body = server.call("crash", "exit_now", {"code": 7})
    err = error_of(status, body, 500, "worker", "SP_ECRASHED")
    assert "code 7" in err["message"] and err["traceback"] is None
    deadline = time.monotonic() + 15
    while True:
        status, _, body = server.call("crash", "add", {"a": 1, "b": 1})
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and json.loads(body) == 2, body


def test_bad_arguments_are_400_validation(server):
    status, _, body = server.call("tp", "add", {"a": "x", "b": 2})
    err = error_of(status, body, 400, "validation", "SP_EBADARGS")
    assert "'a'" in err["message"] and err["python_type"] is None
    status, _, body = server.call("tp", "add", {"a": 1, "b": 2, "c": 3})
    error_of(status, body, 400, "validation", "SP_EBADARGS")
    status, _, body = server.call("tp", "add", {"a": 1})
    error_of(status, body, 400, "validation", "SP_EBADARGS")


def test_invalid_json_is_400_with_where(server):
    status, _, body = server.request("POST", "/v1/pools/tp/tools/add", body='{"a": 1,')
    err = error_of(status, body, 400, "validation", "SP_EBADJSON")
    assert "not valid JSON" in err["message"] and "column" in err["message"]
    status, _, body = server.request("POST", "/v1/pools/tp/tools/add", body=b'{"a":\x00 1}')
    err = error_of(status, body, 400, "validation", "SP_EBADJSON")
    assert "NUL" in err["message"]
    status, _, body = server.request("POST", "/v1/pools/tp/tools/add", body="[1, 2]")
    err = error_of(status, body, 400, "validation", "SP_EBADARGS")
    assert "JSON object" in err["message"]


def test_unknown_pool_or_tool_is_404(server):
    status, _, body = server.call("nope", "add", {})
    err = error_of(status, body, 404, "pool", "SP_ENOPOOL")
    assert "'nope'" in err["message"] and "tp" in err["message"]
    status, _, body = server.call("tp", "nope", {})
    err = error_of(status, body, 404, "validation", "SP_ENOTOOL")
    assert "'nope'" in err["message"] and "add" in err["message"]


def test_timeout_from_header_or_query_is_504(server):
    t0 = time.monotonic()
    status, _, body = server.call("tt", "sleep", {"seconds": 0.6}, headers={"X-Timeout-Ms": "150"})
    elapsed = time.monotonic() - t0
    error_of(status, body, 504, "timeout", "SP_ETIMEOUT")
    assert elapsed < 0.55, f"the 150 ms deadline answered after {elapsed:.2f} s"
    status, _, body = server.call("tt", "sleep", {"seconds": 0.6}, query="?timeout_ms=150")
    error_of(status, body, 504, "timeout", "SP_ETIMEOUT")
    # A deadline long enough lets the call finish.
    status, _, body = server.call("tt", "sleep", {"seconds": 0.05}, query="?timeout_ms=5000")
    assert status == 200 and json.loads(body)["slept"] == 0.05


def test_bad_timeout_or_idempotent_values_are_400(server):
    for value in ("abc", "0", "-5", "12x", "99999999999999"):
        status, _, body = server.call("tp", "noop", {}, headers={"X-Timeout-Ms": value})
        err = error_of(status, body, 400, "validation", "SP_EINVAL")
        assert "milliseconds" in err["message"]
    status, _, body = server.call("tp", "noop", {}, query="?idempotent=maybe")
    error_of(status, body, 400, "validation", "SP_EINVAL")
    status, _, body = server.call("tp", "noop", {}, headers={"X-Idempotent": "true"})
    assert status == 200


def _occupy(server, pool, seconds):
    """Starts a call holding the pool's only worker; returns the thread and its outcome."""
    out = {}
    t = threading.Thread(target=lambda: out.update(r=server.call(pool, "sleep", {"seconds": seconds})))
    t.start()
    deadline = time.monotonic() + 5
    while server.get_json(f"/v1/pools/{pool}")["busy_slots"] < 1:
        assert time.monotonic() < deadline, "the blocking call never started"
        time.sleep(0.02)
    return t, out


def test_saturated_pool_is_503_with_retry_after(server):
    t, out = _occupy(server, "sat", 1.0)
    status, headers, body = server.call("sat", "noop", {})
    err = error_of(status, body, 503, "pool", "SP_ESATURATED")
    assert headers["retry-after"] == "1", headers
    assert "sat" in err["message"]
    t.join()
    assert out["r"][0] == 200


def test_queue_timeout_is_503_with_retry_after(server):
    t, out = _occupy(server, "qt", 1.0)
    status, headers, body = server.call("qt", "noop", {})
    error_of(status, body, 503, "timeout", "SP_EQUEUETIMEOUT")
    assert headers["retry-after"] == "1"
    t.join()
    assert out["r"][0] == 200


# ---- HTTP-level errors ------------------------------------------------------

def test_unknown_path_is_404(server):
    for path in ("/nope", "/v2/pools", "/v1/pools/tp/tools/add/extra", "/v1/pools/tp/things",
                 "/v1//pools"):
        status, headers, body = server.request("GET", path)
        err = error_of(status, body, 404, "http", "NOT_FOUND")
        assert headers["content-type"] == "application/json"
        assert path in err["message"]


def test_wrong_method_is_405_with_allow(server):
    cases = [("GET", "/v1/pools/tp/tools/add", "POST"),
             ("PUT", "/v1/pools/tp/tools/add", "POST"),
             ("POST", "/v1/pools", "GET, HEAD"),
             ("DELETE", "/v1/pools/tp", "GET, HEAD"),
             ("POST", "/metrics", "GET, HEAD"),
             ("PATCH", "/healthz", "GET, HEAD"),
             ("POST", "/", "GET, HEAD")]
    for method, path, allow in cases:
        status, headers, body = server.request(method, path, body=b"{}" if method != "GET" else None)
        err = error_of(status, body, 405, "http", "METHOD_NOT_ALLOWED")
        assert headers["allow"] == allow, (method, path, headers)
        assert method in err["message"]


def test_errors_keep_the_connection_alive(server):
    c = server.conn()
    try:
        for path in ("/nope", "/v1/pools/nope"):
            status, headers, _ = send(c, "GET", path)
            assert status == 404 and headers.get("connection", "").lower() != "close"
        sock = c.sock
        status, _, body = send(c, "POST", "/v1/pools/tp/tools/add", "{bad json")
        assert status == 400
        assert send(c, "GET", "/healthz")[0] == 200 and c.sock is sock
    finally:
        c.close()


# ---- read-only endpoints ------------------------------------------------------

def test_pools_lists_every_pool_with_stats(server):
    doc = server.get_json("/v1/pools")
    names = [p["name"] for p in doc["pools"]]
    assert names == ["tp", "tt", "sat", "qt", "crash", "racy", "checked"]
    tt = doc["pools"][1]
    assert tt["profile"] == "thread" and tt["threads_per_worker"] == 4 and tt["capacity"] == 4
    for key in ("calls", "latency_us", "latency_histogram", "workers", "queue_depth", "tools"):
        assert key in tt


def test_pool_stats_count_calls(server):
    before = server.get_json("/v1/pools/tp")
    for _ in range(3):
        assert server.call("tp", "add", {"a": 1, "b": 1})[0] == 200
    after = server.get_json("/v1/pools/tp")
    assert after["name"] == "tp"
    assert after["calls"]["ok"] - before["calls"]["ok"] == 3
    assert after["tools"]["add"]["ok"] - before["tools"]["add"]["ok"] == 3
    w = after["workers"][0]
    assert w["pid"] > 0 and w["state"] == "ready" and w["rss_kb"] > 0
    status, _, body = server.request("GET", "/v1/pools/nope")
    error_of(status, body, 404, "pool", "SP_ENOPOOL")


def test_tools_lists_the_manifest(server):
    tools = server.get_json("/v1/pools/tp/tools")
    by_name = {t["name"]: t for t in tools}
    assert {"noop", "echo", "add", "sleep", "fail"} <= set(by_name)
    assert "Add two integers" in by_name["add"]["description"]
    assert "a" in json.dumps(by_name["add"]["parameters"])
    status, _, body = server.request("GET", "/v1/pools/nope/tools")
    error_of(status, body, 404, "pool", "SP_ENOPOOL")


def test_healthz_and_readyz(server):
    doc = server.get_json("/healthz")
    assert doc["status"] == "ok" and doc["version"]
    doc = server.get_json("/readyz")
    assert doc["ready"] is True
    assert set(doc["pools"]) == {"tp", "tt", "sat", "qt", "crash", "racy", "checked"}
    assert all(p["ready"] and p["ready_workers"] >= 1 for p in doc["pools"].values())


def test_head_has_headers_and_no_body(server):
    status, headers, body = server.request("HEAD", "/healthz")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_dashboard_is_one_self_contained_page(server):
    status, headers, body = server.request("GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    html = body.decode()
    assert "<canvas" in html and "/v1/pools" in html
    # Nothing loaded from elsewhere: no external src/href, no @import, no CDN.
    import re
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html and "cdn" not in html.lower()


def test_thread_safety_report_only_when_asked(server):
    assert "thread_safety" not in server.get_json("/v1/pools/crash")
    doc = server.get_json("/v1/pools/crash?thread_safety=1")
    assert doc["thread_safety"]["enabled"] is True, doc.get("thread_safety")
    assert set(doc["thread_safety"]["workers"]) == {w["id"] for w in doc["workers"] if w["state"] == "ready"}
    pools = server.get_json("/v1/pools?thread_safety=true")["pools"]
    assert sorted(p["name"] for p in pools if "thread_safety" in p) == ["checked", "crash", "racy"]
    # Pools without checks still get each worker's own report.
    tp = next(p for p in pools if p["name"] == "tp")
    assert all(w["report"]["pid"] == w["pid"] for w in tp["workers"])


def test_thread_safety_report_reaches_every_worker_and_names_the_race(server):
    # Overlapping calls append to the racy adapter's shared list without its lock.
    with ThreadPoolExecutor(8) as ex:
        statuses = list(ex.map(lambda i: server.call("racy", "record", {"value": i, "work_ms": 3})[0],
                               range(32)))
    assert statuses == [200] * 32
    doc = server.get_json("/v1/pools/racy?thread_safety=1")
    ts = doc["thread_safety"]
    assert ts["enabled"] is True and ts["problems"] >= 1, ts
    assert "history" in {w["attribute"] for w in ts["unlocked_writes"]}, ts["unlocked_writes"]
    assert [w["id"] for w in doc["workers"]] == list(ts["workers"])
    # A process pool of two: both workers, each answering for itself once.
    doc = server.get_json("/v1/pools/checked?thread_safety=1")
    ids = [w["id"] for w in doc["workers"]]
    assert len(ids) == 2 and sorted(doc["thread_safety"]["workers"]) == sorted(ids)
    pids = {w["report"]["pid"] for w in doc["workers"]}
    assert pids == {w["pid"] for w in doc["workers"]} and len(pids) == 2
    assert doc["thread_safety"]["problems"] == 0
