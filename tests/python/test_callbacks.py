"""The pure-Python side of nested calls (snakepit_bridge.context): what a tool
sees before anything reaches the worker's C side, and CallError's fields.
The calls themselves run against real workers in tests/integration/test_callbacks.c."""
import pytest

from snakepit_bridge import context
from snakepit_bridge.context import CallError, current


def test_outside_a_worker_nested_calls_say_where_they_work():
    assert context._hostcall is None
    with pytest.raises(RuntimeError, match="only available inside a snakepit worker"):
        current().call("pool", "tool", x=1)
    with pytest.raises(RuntimeError, match="only available inside a snakepit worker"):
        current().call_host("fn")


def test_arguments_named_pool_tool_or_name_are_passed_on(monkeypatch):
    seen = []

    def hostcall(kind, pool, name, args_json):
        seen.append((kind, pool, name, args_json))
        return 0, "[1, 2]"

    monkeypatch.setattr(context, "_hostcall", hostcall)
    assert current().call("p", "t", pool="x", tool="y") == [1, 2]
    assert current().call_host("f", name="z") == [1, 2]
    assert seen == [(1, "p", "t", '{"pool": "x", "tool": "y"}'), (2, "", "f", '{"name": "z"}')]


def test_arrays_and_nan_are_refused_before_the_call(monkeypatch):
    monkeypatch.setattr(context, "_hostcall", lambda *a: pytest.fail("must not be called"))
    with pytest.raises(TypeError, match="arrays are not passed to nested calls"):
        current().call("p", "t", data=b"abc")
    with pytest.raises(TypeError, match="must be JSON values"):
        current().call_host("f", x=float("nan"))


def test_errors_become_call_error_with_every_field(monkeypatch):
    reply = ('{"code": "SP_EPYTHON", "category": "python", "message": "tool raised",'
             ' "python_type": "ValueError", "traceback": "Traceback ...\\nValueError: x"}')
    monkeypatch.setattr(context, "_hostcall", lambda *a: (-13, reply))
    with pytest.raises(CallError) as info:
        current().call("p", "t")
    e = info.value
    assert (e.code, e.category, e.message, e.python_type) == (
        "SP_EPYTHON", "python", "tool raised", "ValueError")
    assert "ValueError: x" in e.traceback
    assert str(e) == "SP_EPYTHON: tool raised"
    # CallError is an ordinary Exception; cancellation is not.
    assert issubclass(CallError, Exception)
    assert not issubclass(context.CallCancelled, Exception)
