"""snakepit_bridge._host: load, manifest, invoke statuses/messages, threads, shutdown."""

import _thread
import json
import logging
import subprocess
import sys
import threading

import pytest

from snakepit_bridge import _arrays, _host
from snakepit_bridge.base_adapter import BaseAdapter, tool
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method

TESTING = "testing_adapter.TestingAdapter"


class MyError(Exception):
    pass


class Unserializable:
    pass


class HostAdapter(BaseAdapter):
    def __init__(self, adapter_args):
        super().__init__()
        self.adapter_args = adapter_args
        self.initialized = 0
        self.closed = 0

    def initialize(self):
        self.initialized += 1

    def close(self):
        self.closed += 1
        raise RuntimeError("close failed")      # shutdown must swallow this

    def cleanup(self):
        self.closed += 10

    @tool
    def args(self):
        return self.adapter_args

    @tool
    def ndarray(self):
        import numpy as np
        return {"a": np.arange(6, dtype=np.int32).reshape(2, 3),
                "f": np.float32(1.5), "i": np.int64(7), "b": np.bool_(True),
                "s": {3}, "t": (1, 2), "nested": [np.array([0.5])]}

    @tool
    def non_finite(self):
        return {"nan": float("nan"), "inf": float("-inf"), "list": [1.0, float("inf")]}

    @tool
    def non_finite_array(self):
        import numpy as np
        return {"arr": np.array([1.0, np.inf])}

    @tool
    def unserializable(self):
        return {"x": Unserializable()}

    @tool
    def cyclic(self):
        a = []
        a.append(a)
        return a

    @tool
    def raise_custom(self):
        raise MyError("custom failure")

    @tool
    def raise_exit(self):
        sys.exit(4)

    @tool
    def raise_interrupt(self):
        raise KeyboardInterrupt()

    @tool
    def kw(self, a: int, **rest):
        return {"a": a, "rest": rest}

    @tool
    def posonly(self, x: int, y: int = 10, /, z: int = 0):
        return [x, y, z]

    @tool
    def gen(self):
        yield 1
        yield 2

    @tool
    async def coro(self, n: int):
        return n * 2

    @tool
    def text(self, s: str):
        return s


@pytest.fixture
def host():
    return _host.Host(HostAdapter(["--flag"]), "test_host.HostAdapter")


@pytest.fixture
def testing():
    return _host.load(TESTING, [], "w1", "pool", "thread", 4)


def error(payload):
    data = json.loads(payload)
    assert set(data) == {"type", "message", "traceback"}
    return data


# -- load ---------------------------------------------------------------------

def test_load_constructs_initializes_and_exports_identity(monkeypatch):
    monkeypatch.syspath_prepend(__file__.rsplit("/", 1)[0])
    h = _host.load("test_host.HostAdapter", ["a", 1], "w7", "hpc", "process", 1)
    assert h.adapter.adapter_args == ["a", 1]
    assert h.adapter.initialized == 1
    assert h.invoke("args", "{}") == (0, '["a",1]')
    import os
    assert (os.environ["SNAKEPIT_THREADS"], os.environ["SNAKEPIT_WORKER_ID"],
            os.environ["SNAKEPIT_POOL"], os.environ["SNAKEPIT_PROFILE"]) == ("1", "w7", "hpc", "process")


def test_load_without_adapter_args_parameter_and_max_workers(testing):
    assert testing.adapter.get_stats()["max_workers"] == 4
    m = json.loads(testing.manifest())
    assert m["adapter"] == TESTING and m["thread_safe"] is True
    names = [t["name"] for t in m["tools"]]
    assert names == sorted(["noop", "echo", "add", "sleep", "fail", "exit_now", "segfault",
                            "numpy_work", "spin", "write_stderr", "thread_name", "pid", "whoami",
                            "page_faults", "crunch", "has_module", "import_module", "collect",
                            "count", "count_async", "stream_then_fail", "timed", "tight"])
    add = next(t for t in m["tools"] if t["name"] == "add")
    assert add == {"name": "add", "description": "Add two integers", "supports_streaming": False,
                   "parameters": [{"name": "a", "type": "int", "required": True},
                                  {"name": "b", "type": "int", "required": True}]}


def test_load_errors_propagate():
    with pytest.raises(ModuleNotFoundError, match="snakepit_nonexistent_module_xyz"):
        _host.load("broken_adapter.BrokenAdapter", [], "w", "p", "process", 1)
    with pytest.raises(ModuleNotFoundError):
        _host.load("no_such_module_abc.Adapter", [], "w", "p", "process", 1)
    with pytest.raises(AttributeError, match="NoSuchClass"):
        _host.load("testing_adapter.NoSuchClass", [], "w", "p", "process", 1)
    with pytest.raises(ValueError, match="package.module.Class"):
        _host.load("NoDots", [], "w", "p", "process", 1)


def test_constructor_error_propagates(monkeypatch):
    class Boom(BaseAdapter):
        def __init__(self):
            raise RuntimeError("ctor failed")
    mod = type(sys)("boom_mod_for_test")
    mod.Boom = Boom
    monkeypatch.setitem(sys.modules, "boom_mod_for_test", mod)
    with pytest.raises(RuntimeError, match="ctor failed"):
        _host.load("boom_mod_for_test.Boom", [], "w", "p", "process", 1)


def test_thread_profile_warns_about_undeclared_adapter(monkeypatch):
    class Undeclared(ThreadSafeAdapter):
        @tool
        def t(self):
            return 1
    mod = type(sys)("undeclared_mod_for_test")
    mod.Undeclared = Undeclared
    monkeypatch.setitem(sys.modules, "undeclared_mod_for_test", mod)
    with pytest.warns(RuntimeWarning, match="Adapter Undeclared does not declare thread safety."):
        _host.load("undeclared_mod_for_test.Undeclared", [], "w", "p", "thread", 8)
    monkeypatch.setenv("SNAKEPIT_THREAD_SAFETY_CHECK", "strict")
    from snakepit_bridge.thread_safety_checker import ThreadSafetyError
    with pytest.raises(ThreadSafetyError):
        _host.load("undeclared_mod_for_test.Undeclared", [], "w", "p", "thread", 8)


# -- status 0 -----------------------------------------------------------------

def test_ok_results(testing):
    assert testing.invoke("noop", "{}") == (0, "null")
    assert testing.invoke("noop", "") == (0, "null")
    assert testing.invoke("noop", " { } ") == (0, "null")
    assert testing.invoke("add", '{"a": 2, "b": 40}') == (0, "42")
    assert testing.invoke("echo", '{"value": {"k": [1, "é", null]}}') == (0, '{"k":[1,"\\u00e9",null]}')
    assert testing.invoke("echo", "{}") == (0, "null")


@pytest.mark.numpy
def test_numpy_tool(testing):
    status, payload = testing.invoke("numpy_work", '{"size": 20, "repeat": 2}')
    assert status == 0 and json.loads(payload)["checksum"] > 0


@pytest.mark.numpy
def test_numpy_and_container_conversion(host):
    import numpy as np
    # As lists (the caller asked for JSON only): NumPy arrays become nested lists.
    status, payload = host.invoke("ndarray", "{}", None, True)
    assert status == 0
    assert json.loads(payload) == {"a": [[0, 1, 2], [3, 4, 5]], "f": 1.5, "i": 7, "b": True,
                                   "s": [3], "t": [1, 2], "nested": [[0.5]]}
    # By default arrays travel in binary: a place-holder in the JSON, a descriptor
    # (name, dtype, shape, where, bytes, nbytes) beside it. Outside a worker there
    # is no shared memory, so the bytes are inline.
    status, payload, arrays = host.invoke("ndarray", "{}")
    assert status == 0
    doc = json.loads(payload)
    assert doc["a"] == {"$array": 0} and doc["nested"] == [{"$array": 1}] and doc["s"] == [3]
    (name, dtype, shape, where, data, nbytes), second = arrays
    assert (name, dtype, shape, where, nbytes) == ("a", 4, (2, 3), _arrays.INLINE, 24)
    assert bytes(memoryview(data)) == np.arange(6, dtype=np.int32).tobytes()
    assert second[:4] == ("nested/0", 12, (1,), _arrays.INLINE) and second[5] == 8


def test_non_finite_floats_become_null(host):
    assert host.invoke("non_finite", "{}") == (0, '{"nan":null,"inf":null,"list":[1.0,null]}')


@pytest.mark.numpy
def test_non_finite_array_values(host):
    import numpy as np
    # As lists (JSON only): non-finite values become null.
    assert host.invoke("non_finite_array", "{}", None, True) == (0, '{"arr":[1.0,null]}')
    # In binary, inf stays inf.
    status, payload, arrays = host.invoke("non_finite_array", "{}")
    assert (status, payload) == (0, '{"arr":{"$array":0}}')
    assert np.frombuffer(bytes(memoryview(arrays[0][4])), dtype=np.float64).tolist() == [1.0, np.inf]


def test_generators_async_kwargs_and_positional_only(host):
    assert host.invoke("gen", "{}") == (0, "[1,2]")
    assert host.invoke("coro", '{"n": 21}') == (0, "42")
    assert json.loads(host.invoke("kw", '{"a": 1, "foo": 2, "bar": [3]}')[1]) == \
        {"a": 1, "rest": {"foo": 2, "bar": [3]}}
    assert host.invoke("posonly", '{"x": 1}') == (0, "[1,10,0]")
    assert host.invoke("posonly", '{"x": 1, "y": 2, "z": 3}') == (0, "[1,2,3]")
    assert host.invoke("text", '{"s": "a\\ud800b"}') == (0, '"a\\ud800b"')  # lone surrogate stays valid


# -- statuses 1 (bad arguments), 3 (unknown tool) and 4 (bad JSON) ------------

def test_unknown_tool(testing):
    status, msg = testing.invoke("nope", "{}")
    assert status == _host.STATUS_NO_TOOL == 3
    assert msg == ("unknown tool 'nope' (available: add, collect, count, count_async, crunch, "
                   "echo, exit_now, fail, has_module, import_module, noop, numpy_work, page_faults, "
                   "pid, segfault, sleep, spin, stream_then_fail, thread_name, tight, timed, "
                   "whoami, write_stderr)")


def test_invalid_json(testing):
    assert testing.invoke("add", '{"a": 1,') == (
        4, "arguments are not valid JSON: Expecting property name enclosed in double quotes: "
           "line 1 column 9 (char 8)")
    assert testing.invoke("add", "{\n  'a': 1}") == (
        4, "arguments are not valid JSON: Expecting property name enclosed in double quotes: "
           "line 2 column 3 (char 4)")
    status, msg = testing.invoke("noop", "{} trailing")
    assert status == _host.STATUS_BAD_JSON and msg.startswith("arguments are not valid JSON: Extra data: line 1 column 4")


def test_not_an_object(testing):
    assert testing.invoke("add", "[1, 2]") == (1, "arguments must be a JSON object, got list")
    assert testing.invoke("add", '"x"') == (1, "arguments must be a JSON object, got str")
    assert testing.invoke("add", "null") == (1, "arguments must be a JSON object, got null")
    assert testing.invoke("add", "3") == (1, "arguments must be a JSON object, got int")


def test_missing_and_unknown_arguments(testing):
    assert testing.invoke("add", '{"a": 1}') == (1, "missing required argument 'b' for tool 'add'")
    assert testing.invoke("add", "{}") == (1, "missing required argument 'a' for tool 'add'")
    assert testing.invoke("add", '{"a": 1, "b": 2, "foo": 3}') == (
        1, "unknown argument 'foo' for tool 'add' (parameters: a, b)")
    assert testing.invoke("noop", '{"foo": 3}') == (
        1, "unknown argument 'foo' for tool 'noop' (parameters: none)")
    # caller-supplied names never break the one-line format
    assert testing.invoke("noop", '{"a\\nb": 3}') == (
        1, "unknown argument 'a\\nb' for tool 'noop' (parameters: none)")
    assert testing.invoke("x\ny", "{}")[1].startswith("unknown tool 'x\\ny' (available: ")


def test_showcase_missing_argument_message():
    h = _host.load("snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter",
                   [], "w", "p", "thread", 2)
    assert h.invoke("compute_intensive", "{}") == (
        1, "missing required argument 'data' for tool 'compute_intensive'")


def test_mistyped_arguments(testing, host):
    assert testing.invoke("add", '{"a": "1", "b": 2}') == (1, "argument 'a' of tool 'add' must be int, got str")
    assert testing.invoke("add", '{"a": 1.0, "b": 2}') == (1, "argument 'a' of tool 'add' must be int, got float")
    assert testing.invoke("add", '{"a": true, "b": 2}') == (1, "argument 'a' of tool 'add' must be int, got bool")
    assert testing.invoke("add", '{"a": null, "b": 2}') == (1, "argument 'a' of tool 'add' must be int, got null")
    assert testing.invoke("sleep", '{"seconds": false}') == (1, "argument 'seconds' of tool 'sleep' must be float, got bool")
    assert testing.invoke("sleep", '{"seconds": [1]}') == (1, "argument 'seconds' of tool 'sleep' must be float, got list")
    assert testing.invoke("sleep", '{"seconds": 0}')[0] == 0        # int accepted for float
    assert testing.invoke("fail", '{"message": 5}') == (1, "argument 'message' of tool 'fail' must be str, got int")
    assert host.invoke("kw", '{"a": "x", "z": 1}') == (1, "argument 'a' of tool 'kw' must be int, got str")


def test_typed_containers_and_optional():
    class A(BaseAdapter):
        @tool
        def f(self, l: list = None, d: dict = None, b: bool = False):
            return [l, d, b]
    h = _host.Host(A(), "a.A")
    assert h.invoke("f", '{"l": {}}') == (1, "argument 'l' of tool 'f' must be list, got dict")
    assert h.invoke("f", '{"d": []}') == (1, "argument 'd' of tool 'f' must be dict, got list")
    assert h.invoke("f", '{"b": 1}') == (1, "argument 'b' of tool 'f' must be bool, got int")
    assert h.invoke("f", '{"b": null}') == (1, "argument 'b' of tool 'f' must be bool, got null")
    assert h.invoke("f", '{"l": null, "d": {"x": 1}, "b": true}') == (0, '[null,{"x":1},true]')


# -- status 2 -----------------------------------------------------------------

def test_tool_raises_builtin(testing):
    status, payload = testing.invoke("fail", '{"message": "bad input"}')
    assert status == 2
    err = error(payload)
    assert err["type"] == "ValueError" and err["message"] == "bad input"
    assert err["traceback"].startswith("Traceback (most recent call last):")
    assert err["traceback"].endswith("ValueError: bad input\n")
    # starts at the adapter's code, not at the SDK's host/wrapper frames
    assert "testing_adapter.py" in err["traceback"].splitlines()[1]
    assert "in fail" in err["traceback"].splitlines()[1]


def test_tool_raises_custom_qualified(host):
    status, payload = host.invoke("raise_custom", "{}")
    err = error(payload)
    assert status == 2 and err["type"] == "test_host.MyError" and err["message"] == "custom failure"
    assert "raise MyError" in err["traceback"]


@pytest.mark.parametrize("tool_name,etype", [("raise_exit", "SystemExit"),
                                             ("raise_interrupt", "KeyboardInterrupt")])
def test_base_exceptions_are_reported_not_raised(host, tool_name, etype):
    status, payload = host.invoke(tool_name, "{}")
    assert status == 2 and error(payload)["type"] == etype


def test_unserializable_result(host):
    status, payload = host.invoke("unserializable", "{}")
    err = error(payload)
    assert status == 2 and err["type"] == "TypeError"
    assert "unserializable" in err["message"] and "Unserializable" in err["message"]
    status, payload = host.invoke("cyclic", "{}")
    assert status == 2 and "'cyclic'" in error(payload)["message"]


def test_invoke_never_raises_on_garbage_input(host):
    for args in [None, b'{"s": "x"}', 12, object()]:
        status, payload = host.invoke("text", args)
        assert isinstance(status, int) and isinstance(payload, str)
    assert host.invoke("text", b'{"s": "x"}') == (0, '"x"')
    assert host.invoke("text", 12) == (
        4, "arguments are not valid JSON: the JSON object must be str, bytes or bytearray, not int")


# -- threads ------------------------------------------------------------------

def test_register_thread_names_a_foreign_thread(testing):
    """A thread started outside `threading` (like the C worker's) gets a name."""
    done = threading.Event()
    seen = {}

    def run():
        try:
            testing.register_thread("snakepit-w1-t3")
            seen["current"] = threading.current_thread().name
            seen["invoke"] = testing.invoke("thread_name", "{}")
            seen["sleep"] = json.loads(testing.invoke("sleep", '{"seconds": 0}')[1])["thread"]
        finally:
            done.set()

    _thread.start_new_thread(run, ())
    assert done.wait(10)
    assert seen["current"] == "snakepit-w1-t3"
    assert seen["invoke"] == (0, '"snakepit-w1-t3"')
    assert seen["sleep"] == "snakepit-w1-t3"
    stats = testing.adapter.get_stats()
    assert stats["thread_utilization"]["snakepit-w1-t3"]["requests_handled"] == 2


def test_concurrent_invokes_overlap(testing):
    n = 8
    barrier = threading.Barrier(n)
    results = []

    def run(i):
        barrier.wait()
        results.append(testing.invoke("sleep", '{"seconds": 0.2}'))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in results] == [0] * n
    stats = testing.adapter.get_stats()
    assert stats["peak_active_requests"] >= n // 2      # they really ran at the same time
    assert stats["active_requests"] == 0


# -- process-level behaviours of the testing adapter -------------------------

def _run_tool_in_subprocess(tool_name, args="{}"):
    code = ("from snakepit_bridge import _host\n"
            f"h = _host.load({TESTING!r}, [], 'w', 'p', 'process', 1)\n"
            f"print(h.invoke({tool_name!r}, {args!r}))\n")
    import os
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(root, "python"),
                                         os.path.join(root, "tests", "adapters")])
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


def test_exit_now_and_segfault_and_stderr():
    assert _run_tool_in_subprocess("exit_now", '{"code": 7}').returncode == 7
    assert _run_tool_in_subprocess("segfault").returncode == -11
    proc = _run_tool_in_subprocess("write_stderr", '{"text": "hello-stderr"}')
    assert proc.returncode == 0 and "hello-stderr" in proc.stderr


# -- shutdown -----------------------------------------------------------------

def test_shutdown_calls_close_and_cleanup_once_and_never_raises(host):
    host.shutdown()
    host.shutdown()
    assert host.adapter.closed == 11


def test_shutdown_without_hooks_logs_nothing_and_failing_hooks_are_logged(caplog):
    class Bare:
        pass

    class Failing:
        def close(self):
            raise RuntimeError("close broke")

    with caplog.at_level(logging.ERROR, logger="snakepit_bridge.host"):
        assert _host.Host(Bare(), "x.Bare").shutdown() is None     # nothing to call
        assert caplog.records == []
        assert _host.Host(Failing(), "x.Failing").shutdown() is None  # logged, not raised
    assert len(caplog.records) == 1
    assert "x.Failing.close() failed" in caplog.text and "close broke" in caplog.text


def test_to_json_top_level_values():
    assert _host.to_json(2.5) == "2.5"
    assert _host.to_json("é") == '"\\u00e9"'
    assert _host.to_json(float("inf")) == "null"
    assert _host.to_json([1, None]) == "[1,null]"


@pytest.mark.numpy
def test_to_json_numpy_scalars():
    import numpy as np
    assert _host.to_json(np.float64(2.5)) == "2.5"
    assert _host.to_json([np.int8(1), None]) == "[1,null]"
