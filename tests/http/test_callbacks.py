"""Tools calling back, over HTTP: a nested call's result comes back through
`snakepit serve`; a client that disconnects from a stream whose tool waits
for a nested call cancels both (each tool sees CallCancelled); /metrics counts
nested calls and refusals."""

import json
import os
import time

import pytest

from conftest import Server, pool_yaml

CALLBACK = "callback_adapter.CallbackAdapter"


@pytest.fixture(scope="module", params=["0", "2"], ids=["http-on-loop", "http-2-threads"])
def cb_server(request, tmp_path_factory):
    """Pools `ca` (process 2x1) and `cb` (thread 1x2) of the callback adapter,
    with HTTP on the runtime's loop thread and on MHD's own threads."""
    config = ("pools:\n" + pool_yaml("ca", size=2, adapter=CALLBACK)
              + pool_yaml("cb", "thread", threads=2, adapter=CALLBACK))
    s = Server(tmp_path_factory.mktemp("callbacks"), config, "--http-threads", request.param)
    yield s
    assert s.stop() == 0, s.stderr()


def wait_marker(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            if text:
                return text
        time.sleep(0.05)
    return None


def test_nested_call_result_and_errors_over_http(cb_server):
    status, _, body = cb_server.call("ca", "relay",
                                     {"pool": "cb", "tool": "add", "args": {"a": 20, "b": 22}})
    assert status == 200 and json.loads(body) == 42
    status, _, body = cb_server.call("ca", "relay", {"pool": "nope", "tool": "add", "catch": True})
    assert status == 200 and json.loads(body)["error"]["code"] == "SP_ENOPOOL"


def test_disconnect_cancels_the_stream_and_its_nested_call(cb_server, tmp_path):
    inner, outer = str(tmp_path / "inner"), str(tmp_path / "outer")
    c = cb_server.conn(30)
    c.request("POST", "/v1/pools/ca/tools/relay_stream",
              body=json.dumps({"pool": "cb", "tool": "nap",
                               "args": {"seconds": 60, "marker": inner}, "marker": outer}),
              headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    resp = c.getresponse()
    assert resp.status == 200
    assert resp.readline().startswith(b"data: ")     # "started": the nested nap runs next
    time.sleep(0.3)
    t0 = time.monotonic()
    c.sock.shutdown(2)
    c.close()
    assert wait_marker(outer) == "cancelled"
    assert wait_marker(inner) == "cancelled"
    assert time.monotonic() - t0 < 10        # not the nap's 60 s, nor the 20 s timeout
    status, _, body = cb_server.call("cb", "add", {"a": 1, "b": 1})
    assert status == 200 and json.loads(body) == 2


def test_metrics_count_nested_calls(cb_server):
    cb_server.call("ca", "relay", {"pool": "cb", "tool": "add", "args": {"a": 1, "b": 1}})
    cb_server.call("ca", "host", {"name": "nope", "catch": True})
    status, _, body = cb_server.request("GET", "/metrics")
    assert status == 200
    text = body.decode()

    def value(name):
        for line in text.splitlines():
            if line.startswith(name + "{") and 'pool="ca"' in line:
                return float(line.rsplit(" ", 1)[1])
        return None

    assert value("snakepit_nested_calls_total") >= 1
    assert value("snakepit_nested_refused_total") >= 1
    assert value("snakepit_host_function_calls_total") == 0   # refused before it ran
