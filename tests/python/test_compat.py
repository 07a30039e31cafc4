"""Adapters written for Snakepit on the worker's host (_host.load, the code the
C worker drives): execute_tool registries in the manifest, chunk objects,
binary arguments, graceful results, lifecycle, and Snakepit's SDK names.
Sessions and host callbacks: test_compat_host.py."""

import json
import logging

import pytest

from snakepit_bridge import _host
from snakepit_bridge import SessionContext, ZeroCopyRef, configure_logging, get_logger
from snakepit_bridge.base_adapter_threaded import (RequestTracker, ThreadLocalStorage,
                                                   ThreadSafeAdapter, require_thread_safe,
                                                   thread_safe_method, tool,
                                                   validate_thread_safety)

SPEC = "snakepit_style_adapter.RegistryAdapter"


@pytest.fixture
def host():
    h = _host.load(SPEC, [], "w1", "p", "process", 1)
    yield h
    h.shutdown()


def call(h, tool, **args):
    status, payload = h.invoke(tool, json.dumps(args))[:2]
    return status, (json.loads(payload) if status in (0, 2) else payload)


def stream(h, tool, **args):
    status, items = h.invoke(tool, json.dumps(args), stream=True)
    assert status == _host.STATUS_STREAM, items
    out = []
    while True:
        status, payload = h.stream_next(items)
        if status == _host.STATUS_END:
            return out
        assert status == _host.STATUS_OK, payload
        out.append(json.loads(payload))


def test_manifest_lists_registry_and_tool_methods_and_nothing_else(host):
    tools = {t["name"]: t for t in json.loads(host.manifest())["tools"]}
    assert set(tools) == {"add", "fail", "countdown", "digest", "odd_result", "bytes_stream",
                          "shout", "describe", "blob_size"}
    # Parameters come from the handler, without its context parameter.
    add = {p["name"]: p for p in tools["add"]["parameters"]}
    assert add["a"] == {"name": "a", "type": "int", "required": True}
    assert add["b"]["default"] == 1 and not add["b"]["required"]
    assert tools["add"]["description"] == "Add two integers."
    assert tools["countdown"]["supports_streaming"] is True
    assert tools["add"]["supports_streaming"] is False
    for private in ("helper", "execute_tool", "settings", "handlers", "mode", "math"):
        assert private not in tools


def test_registry_tools_run_through_execute_tool(host):
    assert call(host, "add", a=2, b=5) == (0, 7)
    assert call(host, "shout", text="hi") == (0, "HI!")
    status, out = call(host, "describe")
    assert status == 0 and out["dispatched"] == 2      # describe itself is a @tool method
    assert out["context_type"] == "SessionContext" and out["live"] is True


def test_registry_tool_arguments_are_validated(host):
    status, msg = call(host, "add", b=1)
    assert status == _host.STATUS_INVALID and "missing required argument 'a'" in msg
    status, msg = call(host, "add", a=1, c=2)
    assert status == _host.STATUS_INVALID and "unknown argument 'c'" in msg
    status, msg = call(host, "add", a="x")
    assert status == _host.STATUS_INVALID and "must be int" in msg


def test_unlisted_names_stay_unreachable(host):
    for name in ("helper", "settings", "execute_tool", "nope"):
        status, msg = call(host, name)
        assert status in (_host.STATUS_NO_TOOL,), (name, msg)


def test_errors_keep_type_message_and_adapter_frames(host):
    status, err = call(host, "fail", message="bad input")
    assert status == _host.STATUS_ERROR
    assert err["type"] == "ValueError" and err["message"] == "bad input"
    assert "snakepit_style_adapter.py" in err["traceback"]
    assert "_compat.py" not in err["traceback"].splitlines()[1]


def test_chunk_objects_stream_as_their_data(host):
    assert stream(host, "countdown", start=3) == [{"n": 3}, {"n": 2}, {"n": 1}]
    assert stream(host, "bytes_stream") == [[0, 1, 255]]
    # Called without streaming, the chunks come back as one list.
    assert call(host, "countdown", start=2) == (0, [{"n": 2}, {"n": 1}])


def test_binary_arguments_arrive_as_bytes(host):
    np = pytest.importorskip("numpy")
    data = bytes(range(256)) * 4
    arr = np.frombuffer(data, dtype=np.uint8)
    status, payload = host.invoke("digest", "{}", [("data", 6, (arr.size,), arr)])  # 6: uint8[:2]
    assert status == 0, payload
    out = json.loads(payload)
    import hashlib
    assert out == {"type": "bytes", "size": 1024, "sha256": hashlib.sha256(data).hexdigest()}
    # A JSON list of byte values, and a @tool method's bytes parameter, too.
    assert call(host, "digest", data=[1, 2, 3])[1]["size"] == 3
    assert call(host, "blob_size", blob=[9, 9])[1] == {"type": "bytes", "size": 2}


def test_results_convert_gracefully_for_snakepit_adapters(host):
    status, out = call(host, "odd_result")
    assert status == 0
    assert out["when"] == "2024-05-17" and out["point"] == {"x": 1, "y": 2}
    assert out["opaque"] == {"__ffi_unserializable__": True,
                             "__type__": "snakepit_style_adapter.Opaque"}


class _Plain:
    """An adapter of this SDK's own style (no execute_tool)."""

    @tool(description="A date is not JSON")
    def when(self):
        import datetime
        return {"when": datetime.date(2024, 5, 17)}


def test_other_adapters_keep_the_strict_rule(host):
    h = _host.Host(_Plain(), "test_compat._Plain")
    status, payload = h.invoke("when", "{}")[:2]
    assert status == _host.STATUS_ERROR and "not JSON serializable" in payload


def test_async_lifecycle_runs_once_per_worker(tmp_path, monkeypatch):
    log = tmp_path / "life.txt"
    monkeypatch.setenv("LIFECYCLE_FILE", str(log))
    h = _host.load("snakepit_style_adapter.AsyncLifecycleAdapter", [], "w1", "p", "process", 1)
    for _ in range(3):
        status, out = call(h, "state")
        assert status == 0 and out["initialized"] is True and out["context_set"] == 1
    steps = [line.split()[0] for line in log.read_text().splitlines()]
    assert steps == ["set_session_context", "initialize"]
    h.shutdown()
    h.shutdown()
    steps = [line.split()[0] for line in log.read_text().splitlines()]
    assert steps == ["set_session_context", "initialize", "cleanup"]


@pytest.mark.parametrize("cls,text", [("FailingInitAdapter", "model file missing"),
                                      ("FailingAsyncInitAdapter", "database unreachable")])
def test_initialize_failure_fails_the_load(cls, text):
    with pytest.raises(RuntimeError, match=text):
        _host.load(f"snakepit_style_adapter.{cls}", [], "w1", "p", "process", 1)


def test_session_context_outside_a_session():
    ctx = SessionContext()
    assert ctx.session_id is None and ctx.session is None
    with pytest.raises(RuntimeError, match="only available inside a snakepit worker"):
        ctx.call_elixir_tool("anything", x=1)
    fixed = SessionContext(None, "s-1", {"k": "v"})
    assert fixed.session_id == "s-1" and fixed.request_metadata == {"k": "v"}
    assert "anything" in fixed.elixir_tools
    with fixed as same:
        assert same is fixed


class _Counter(ThreadSafeAdapter):
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="one")
    def one(self):
        return self._tracker.get_stats()


def test_request_tracker_under_snakepit_names():
    a = _Counter()
    assert a.one()["total_active_requests"] == 1
    rid = a._tracker.start_request()
    assert rid == 2 and a._tracker.get_stats()["total_active_requests"] == 1
    a._tracker.end_request()
    stats = a.get_stats()
    assert stats["tracker"]["total_requests"] == 2 and stats["total_requests"] == 2
    assert stats["tracker"]["total_active_requests"] == 0
    assert stats["adapter_class"] == "_Counter"
    with a.track_request(request_id="r"):
        assert a._tracker.get_stats()["total_active_requests"] == 1
    with a._lock:
        pass
    a._thread_local.set("k", 1)
    assert a.get_thread_local("k") == 1 and a._thread_local.get("k") == 1
    a._thread_local.delete("k")
    assert a.get_thread_local("k") is None
    alone = RequestTracker()
    alone.start_request()
    assert alone.get_stats() == {"total_requests": 1, "active_threads": 1,
                                 "total_active_requests": 1, "threads_seen": 1}
    alone.end_request()
    assert alone.get_stats()["total_active_requests"] == 0
    store = ThreadLocalStorage()
    store.set("a", 1)
    store.clear()
    assert store.get("a", 5) == 5


def test_thread_safety_helpers():
    assert validate_thread_safety(_Counter) and validate_thread_safety(_Counter())
    assert not validate_thread_safety(object)

    @require_thread_safe
    def use(adapter):
        return "ok"

    assert use(_Counter()) == "ok"
    with pytest.raises(ValueError, match="not thread-safe"):
        use(object())
    assert getattr(_Counter.one, "__thread_safe__") is True


def test_logging_names_and_levels(monkeypatch):
    assert get_logger("snakepit_bridge.x").name == "snakepit.bridge.x"
    assert get_logger("my_adapter").name == "snakepit.my_adapter"
    assert get_logger("snakepit.pool").name == "snakepit.pool"
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        monkeypatch.setenv("SNAKEPIT_LOG_LEVEL", "info")
        configure_logging(force=True)
        assert root.level == logging.INFO and len(root.handlers) == 1
        record = logging.LogRecord("snakepit.x", logging.INFO, __file__, 1, "m", None, None)
        assert root.handlers[0].filter(record) and record.correlation_id == "-"
        monkeypatch.setenv("SNAKEPIT_LOG_LEVEL", "bogus")
        configure_logging(force=True)
        assert root.level == logging.ERROR
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.disable(logging.NOTSET)


def test_zero_copy_ref_round_trip():
    ref = ZeroCopyRef({"kind": "dlpack", "device": "cpu", "shape": [2], "ref": "r1"})
    assert (ref.kind, ref.shape, ref.ref, ref.metadata) == ("dlpack", [2], "r1", {})
    assert ZeroCopyRef.from_payload(ref.to_payload()).to_payload() == ref.payload
    blob = ZeroCopyRef.from_array(b"abcd")
    assert (blob.kind, blob.shape, blob.bytes) == ("bytes", [4], 4) and blob.array == b"abcd"
    with pytest.raises(TypeError):
        ZeroCopyRef(["not", "a", "dict"])
