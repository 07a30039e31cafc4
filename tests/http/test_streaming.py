"""Streaming over HTTP: `Accept: text/event-stream` (Server-Sent Events) and
`Accept: application/x-ndjson` (chunked lines), read as they arrive; errors
after some chunks as a final event; a client that disconnects closes the
generator; /metrics counts streams and chunks."""

import json
import os
import socket
import time

import pytest

from conftest import ADAPTERS  # noqa: F401


def open_stream(server, pool, tool, args, accept):
    c = server.conn(30)
    c.request("POST", f"/v1/pools/{pool}/tools/{tool}", body=json.dumps(args),
              headers={"Content-Type": "application/json", "Accept": accept})
    return c, c.getresponse()


def sse_events(resp):
    """(seconds since the first call, event name, data) per event, as they arrive."""
    t0 = time.monotonic()
    event, out = "message", []
    while True:
        line = resp.readline()
        if not line:
            return out
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((time.monotonic() - t0, event, json.loads(line[6:])))
            event = "message"


@pytest.mark.parametrize("pool", ["tp", "tt"])
def test_sse_delivers_chunks_as_they_come(server, pool):
    c, resp = open_stream(server, pool, "count", {"n": 3, "delay": 0.4}, "text/event-stream")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    events = sse_events(resp)
    c.close()
    assert [(e, d) for _, e, d in events] == [
        ("message", {"i": 0}), ("message", {"i": 1}), ("message", {"i": 2}),
        ("done", {"chunks": 3})]
    # Chunks 0.4 s apart arrive apart, not all at the end.
    assert events[2][0] - events[0][0] > 0.5


def test_ndjson_lines_and_final_error(server):
    c, resp = open_stream(server, "tp", "stream_then_fail", {"n": 2}, "application/x-ndjson")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/x-ndjson"
    lines = [json.loads(l) for l in resp.read().decode().splitlines()]
    c.close()
    assert lines[:2] == [0, 1]
    err = lines[2]["$error"]
    assert err["code"] == "SP_EPYTHON" and err["python_type"] == "ValueError"
    assert "failed after 2 chunks" in err["message"] and "Traceback" in err["traceback"]
    assert len(lines) == 3


def test_sse_error_before_any_chunk_is_a_plain_error_reply(server):
    c, resp = open_stream(server, "tp", "no_such_tool", {}, "text/event-stream")
    body = json.loads(resp.read())
    c.close()
    assert resp.status == 404 and body["error"]["code"] == "SP_ENOTOOL"


def test_client_disconnect_closes_the_generator(server, tmp_path):
    marker = str(tmp_path / "closed")
    c, resp = open_stream(server, "tp", "count",
                          {"n": 100000, "delay": 0.01, "marker": marker}, "text/event-stream")
    assert resp.readline().startswith(b"data: ")
    c.sock.shutdown(2)
    c.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists(marker):
        time.sleep(0.05)
    assert os.path.exists(marker), "the generator's finally block did not run"
    with open(marker) as f:
        assert f.read().startswith("closed")
    # The pool serves again.
    status, _, body = server.call("tp", "add", {"a": 1, "b": 2})
    assert status == 200 and json.loads(body) == 3


def test_slow_client_pauses_the_generator(server, request):
    if "http-2-threads" in request.node.name:
        # Correct there too, but a paused-and-resumed stream moves ~7k chunks/s
        # on MHD's own threads (vs ~70k on the loop thread): 30 s for this test.
        pytest.skip("slow-consumer resumption on MHD threads is slow; covered on the loop thread")
    # ~10 MB of chunks (more than loopback sockets buffer); the client reads nothing for a while: the server holds
    # a bounded amount (plus what the sockets buffer), the generator waits, and
    # everything arrives intact and in order.
    n = 200000
    c = server.conn(60)
    # A small receive buffer from the start (before the handshake sets the
    # window), so the sockets buffer little and the server's own bound shows.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", server.port))
    c.sock = sock
    c.request("POST", "/v1/pools/tt/tools/timed", body=json.dumps({"n": n}),
              headers={"Content-Type": "application/json", "Accept": "application/x-ndjson"})
    resp = c.getresponse()
    time.sleep(1.5)
    t_read = time.monotonic()
    lines = [json.loads(l) for l in resp.read().decode().splitlines()]
    c.close()
    assert lines[-1] == {"$done": {"chunks": n}}
    assert [l["i"] for l in lines[:-1]] == list(range(n))
    made_before_read = sum(1 for l in lines[:-1] if l["t"] < t_read - 0.05)
    assert made_before_read < n * 3 // 4, made_before_read


def test_metrics_count_streams(server):
    c, resp = open_stream(server, "tp", "count", {"n": 2}, "application/x-ndjson")
    resp.read()
    c.close()
    status, _, body = server.request("GET", "/metrics")
    text = body.decode()
    assert status == 200
    assert 'snakepit_pool_streams_active{pool="tp"} 0' in text
    line = [l for l in text.splitlines() if l.startswith('snakepit_stream_chunks_total{pool="tp"}')]
    assert line and float(line[0].split()[-1]) >= 2
