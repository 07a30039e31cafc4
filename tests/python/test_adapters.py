"""The shipped showcase adapter and the test adapters, through _host."""

import json
import sys
import threading
import time

import pytest

from snakepit_bridge import _host

SHOWCASE = "snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter"


@pytest.fixture
def showcase():
    return _host.load(SHOWCASE, [], "w1", "hpc_pool", "thread", 4)


def ok(host, tool_name, args=None):
    status, payload = host.invoke(tool_name, json.dumps(args or {}))
    assert status == 0, payload
    return json.loads(payload)


def test_showcase_manifest(showcase):
    m = json.loads(showcase.manifest())
    assert m["thread_safe"] is True
    tools = {t["name"]: t for t in m["tools"]}
    assert set(tools) == {"ping", "compute_intensive", "matrix_multiply", "batch_process",
                          "stress_test", "get_thread_stats", "sleep", "echo", "count_up",
                          "chat", "relay", "ask_host",
                          # Snakepit's ThreadedShowcaseAdapter had these too
                          "get_adapter_stats", "clear_caches", "get_history"}
    assert all(t["description"] for t in tools.values())
    assert tools["matrix_multiply"]["parameters"] == [
        {"name": "a", "type": "list", "required": False, "default": None},
        {"name": "b", "type": "list", "required": False, "default": None},
        {"name": "size", "type": "int", "required": False, "default": 0},
        {"name": "input_vector", "type": "list", "required": False, "default": None}]
    assert tools["stress_test"]["parameters"] == [
        {"name": "iterations", "type": "int", "required": False, "default": 1000},
        {"name": "duration_ms", "type": "int", "required": False, "default": 0},
        {"name": "complexity", "type": "int", "required": False, "default": 1000}]


def test_showcase_pure_python_tools(showcase):
    assert ok(showcase, "ping") == {"status": "ok", "thread": threading.current_thread().name}
    r = ok(showcase, "batch_process", {"items": [2, "ab", None, {"k": 1}]})
    assert r["results"] == [4, "AB", None, {"k": 1}] and r["count"] == 4
    r = ok(showcase, "stress_test", {"iterations": 100})
    assert r["iterations"] == 100 and r["result"] == sum(i * i for i in range(100))
    assert r["vector_sum"] == float(sum(range(100)))
    assert ok(showcase, "sleep", {"seconds": 0.01})["slept"] == 0.01
    assert ok(showcase, "echo", {"x": 1}) == {"x": 1}


def test_showcase_without_numpy_fails_only_numpy_tools(tmp_path, monkeypatch):
    # A NumPy that cannot be imported (as on a free-threaded 3.14t without it):
    # the adapter still loads; the NumPy tools fail alone and say why.
    stub = tmp_path / "numpy"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ImportError('NumPy is hidden for this test')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "numpy" or m.startswith("numpy.")]:
        monkeypatch.delitem(sys.modules, name)
    h = _host.load(SHOWCASE, [], "w1", "hpc_pool", "thread", 4)
    assert ok(h, "ping")["status"] == "ok"
    assert ok(h, "stress_test", {"iterations": 10})["result"] == sum(i * i for i in range(10))
    for tool_name, args in [("compute_intensive", {"data": [1]}), ("matrix_multiply", {"size": 2}),
                            ("batch_process", {"items": [[1, 2]]})]:
        status, payload = h.invoke(tool_name, json.dumps(args))
        err = json.loads(payload)
        assert status == 2 and err["type"] == "snakepit_bridge.optional.MissingDependency", err
        assert f"tool '{tool_name}' needs 'numpy'" in err["message"]
        assert "NumPy is hidden for this test" in err["message"]
        assert "the adapter's other tools are not affected" in err["message"]


@pytest.mark.numpy
def test_showcase_tools(showcase):
    assert ok(showcase, "ping") == {"status": "ok", "thread": threading.current_thread().name}
    r = ok(showcase, "compute_intensive", {"data": [1, 2, 3, 4]})
    assert (r["sum"], r["sum_of_squares"], r["mean"], r["min"], r["max"], r["count"]) == \
        (10.0, 30.0, 2.5, 1.0, 4.0, 4)
    assert ok(showcase, "compute_intensive", {"data": []})["mean"] is None
    r = ok(showcase, "matrix_multiply", {"a": [[1, 2], [3, 4]], "b": [[5, 6], [7, 8]]})
    assert r["result"] == [[19.0, 22.0], [43.0, 50.0]] and r["shape"] == [2, 2]
    r = ok(showcase, "matrix_multiply", {"size": 64})
    assert r["shape"] == [64, 64] and 0 < r["checksum"] < 64 * 64 * 64
    status, payload = showcase.invoke("matrix_multiply", "{}")
    assert status == 2 and json.loads(payload)["type"] == "ValueError"
    r = ok(showcase, "batch_process", {"items": [2, "ab", [1, 2], None, {"k": 1}]})
    assert r["results"] == [4, "AB", 3.0, None, {"k": 1}] and r["count"] == 5
    r = ok(showcase, "stress_test", {"iterations": 100})
    assert r["iterations"] == 100 and r["result"] == sum(i * i for i in range(100))
    assert ok(showcase, "sleep", {"seconds": 0.01})["slept"] == 0.01
    assert ok(showcase, "echo", {"x": 1, "y": [True, None]}) == {"x": 1, "y": [True, None]}
    stats = ok(showcase, "get_thread_stats")
    assert stats["max_workers"] == 4
    assert stats["total_requests"] == 11          # every tool call above, this one included
    assert stats["active_requests"] == 1
    assert stats["total_computations"] == 6


def test_showcase_runs_calls_on_threads_concurrently(showcase):
    n = 4
    barrier = threading.Barrier(n)
    out = []

    def run(i):
        showcase.register_thread(f"snakepit-w1-t{i}")
        barrier.wait()
        out.append(showcase.invoke("sleep", '{"seconds": 0.15}'))

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert all(s == 0 for s, _ in out)
    assert elapsed < 0.15 * n * 0.75               # generous: serial would be 0.6 s
    stats = ok(showcase, "get_thread_stats")
    assert stats["peak_active_requests"] == n
    assert sum(1 for name in stats["thread_utilization"] if name.startswith("snakepit-w1-t")) == n


@pytest.mark.numpy
def test_testing_adapter_numpy_work():
    import numpy as np
    h = _host.load("testing_adapter.TestingAdapter", [], "w", "p", "process", 1)
    r = ok(h, "numpy_work", {"size": 10, "repeat": 3})
    rng = np.random.default_rng(10)
    a, b = rng.random((10, 10)), rng.random((10, 10))
    assert r["checksum"] == pytest.approx(3 * float(np.dot(a, b).sum()))


def test_testing_adapter_tools():
    h = _host.load("testing_adapter.TestingAdapter", [], "w", "p", "process", 1)
    assert ok(h, "spin", {"seconds": 0.01})["loops"] > 0
    assert ok(h, "crunch", {"n": 5}) == (0 * 31 * 31 * 31 * 31 + 1 * 31 * 31 * 31 + 2 * 31 * 31
                                         + 3 * 31 + 4) % 1_000_003
    assert ok(h, "has_module", {"name": "json"}) is True
    assert ok(h, "has_module", {"name": "no_such_module_here"}) is False
    import os
    assert ok(h, "pid") == os.getpid()


def test_patterns_adapter():
    h = _host.load("patterns_adapter.PatternsAdapter", [], "w", "p", "thread", 4)
    barrier = threading.Barrier(4)
    results = []

    def run():
        barrier.wait()
        for i in range(50):
            results.append(ok(h, "predict", {"input_data": f"input_{i % 5}"}))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    # each thread computes 5 distinct inputs once, then hits its own cache
    assert sum(1 for r in results if not r["cached"]) == 4 * 5
    assert {r["prediction"] for r in results} == {i * i for i in range(5)}
    assert ok(h, "get_counter") == {"counter": 200, "cache_threads": 4}
    assert ok(h, "predict", {"input_data": "zzz"}) == {"prediction": 3, "cached": False}


def test_showcase_takes_snakepit_parameters_and_tools(showcase):
    """Callers written for Snakepit's ThreadedShowcaseAdapter keep working."""
    r = ok(showcase, "ping", {"message": "hello"})
    assert r["message"] == "hello" and r["status"] == "ok" and r["timestamp"] > 0
    r = ok(showcase, "stress_test", {"duration_ms": 30, "complexity": 100})
    assert r["target_duration_ms"] == 30 and r["iterations"] >= 1
    assert r["actual_duration_ms"] >= 30 and r["complexity"] == 100
    r = ok(showcase, "batch_process", {"items": [{"id": 1}, 3], "delay_ms": 1})
    assert r["results"] == [{"id": 1}, 9]
    history = ok(showcase, "get_history", {"limit": 5})
    assert history["returned"] == 1 and history["entries"][0]["items_processed"] == 2
    assert ok(showcase, "get_history", {"limit": 0})["returned"] == 0
    assert ok(showcase, "clear_caches")["status"] == "success"
    stats = ok(showcase, "get_adapter_stats")
    assert stats["history_entries"] == 1 and stats["tracker"]["total_requests"] >= 5
    status, payload = showcase.invoke("stress_test", '{"duration_ms": -1}')
    assert status == 2 and "duration_ms must be in" in payload


@pytest.mark.numpy
def test_showcase_snakepit_numpy_parameters(showcase):
    r = ok(showcase, "compute_intensive", {"data": [1.0, 2.0, 3.0], "iterations": 10})
    assert r["iterations"] == 10 and r["input_size"] == 3 and r["sum"] == 6.0
    import numpy as np
    x = np.asarray([1.0, 2.0, 3.0])
    for _ in range(10):
        x = np.sin(x) * np.cos(x) + x * 0.1
    assert r["result"] == pytest.approx(float(x.mean()))
    r = ok(showcase, "matrix_multiply", {"input_vector": [0.01] * 100})
    assert r["output_size"] == 10 and len(r["output"]) == 10 and r["input_size"] == 100
    again = ok(showcase, "matrix_multiply", {"input_vector": [0.01] * 100})
    assert again["output"] == r["output"]           # shared, seeded weights
    status, payload = showcase.invoke("matrix_multiply", '{"input_vector": [1, 2]}')
    assert status == 2 and "input_vector must hold 100 numbers" in payload
