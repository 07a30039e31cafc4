"""Host's streaming entry points (what the worker's execution thread calls):
invoke(stream=True), stream_next and stream_close, for sync and async
generators, plain results, errors after some chunks and early closing."""

import json

import pytest

from snakepit_bridge import _host
from snakepit_bridge.base_adapter import tool

from test_host import testing  # noqa: F401  (fixture)


def drain(host, items):
    out = []
    while True:
        status, text = host.stream_next(items)
        if status == _host.STATUS_END:
            return out, None
        if status != _host.STATUS_OK:
            return out, (status, json.loads(text))
        out.append(json.loads(text))


def start(host, tool, args):
    status, items = host.invoke(tool, json.dumps(args), None, False, True)
    assert status == _host.STATUS_STREAM, items
    return items


def test_generator_streams_its_items(testing):  # noqa: F811
    assert drain(testing, start(testing, "count", {"n": 3})) == ([{"i": 0}, {"i": 1}, {"i": 2}], None)


def test_async_generator_streams_its_items(testing):  # noqa: F811
    assert drain(testing, start(testing, "count_async", {"n": 3})) == ([0, 1, 2], None)


def test_plain_result_is_one_chunk(testing):  # noqa: F811
    assert drain(testing, start(testing, "add", {"a": 1, "b": 2})) == ([3], None)


def test_error_after_chunks(testing):  # noqa: F811
    chunks, (status, err) = drain(testing, start(testing, "stream_then_fail", {"n": 2}))
    assert chunks == [0, 1] and status == _host.STATUS_ERROR
    assert err["type"] == "ValueError" and "failed after 2 chunks" in err["message"]
    assert "stream_then_fail" in err["traceback"]


def test_validation_happens_before_the_stream(testing):  # noqa: F811
    status, msg = testing.invoke("count", '{"n": "x"}', None, False, True)
    assert status == _host.STATUS_INVALID and "'n'" in msg


@pytest.mark.parametrize("tool,want", [("count", "closed 0"), ("count_async", "aclosed")])
def test_close_runs_finally_blocks(testing, tmp_path, tool, want):  # noqa: F811
    marker = tmp_path / "m"
    items = start(testing, tool, {"n": 100, "marker": str(marker)})
    assert testing.stream_next(items)[0] == _host.STATUS_OK
    assert not marker.exists()
    testing.stream_close(items)
    assert marker.read_text() == want


def test_plain_call_of_async_generator_is_a_list(testing):  # noqa: F811
    assert testing.invoke("count_async", '{"n": 2}') == (_host.STATUS_OK, "[0,1]")


class ArrayChunks:
    """Streams arrays and bytes, which travel in chunks as nested JSON lists."""

    @tool(supports_streaming=True)
    def frames(self, n: int = 2):
        import numpy as np
        for i in range(n):
            yield {"i": i, "frame": np.arange(4, dtype=np.int16).reshape(2, 2) * i}
        yield b"\x01\xff"


@pytest.mark.numpy
def test_arrays_in_chunks_become_lists():
    host = _host.Host(ArrayChunks(), "test_streaming.ArrayChunks")
    chunks, err = drain(host, start(host, "frames", {"n": 2}))
    assert err is None
    assert chunks == [{"i": 0, "frame": [[0, 0], [0, 0]]},
                      {"i": 1, "frame": [[0, 1], [2, 3]]},
                      [1, 255]]
