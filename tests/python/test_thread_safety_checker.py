"""ThreadSafetyChecker: real overlap (not sequential access), libraries, adapters."""

import json
import os
import threading
import warnings

import pytest

from snakepit_bridge import thread_safety_checker as tsc
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.thread_safety_checker import (ThreadSafetyChecker, ThreadSafetyError,
                                                   ThreadSafetyWarning)


def overlap(checker, method, n):
    """Run n threads that are all inside `method` at the same moment."""
    inside = threading.Barrier(n)

    def run():
        with checker.track_execution(method):
            inside.wait(10)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def sequential(checker, method, n):
    """n different threads, one after the other (never overlapping)."""
    for _ in range(n):
        t = threading.Thread(target=lambda: checker.track_execution(method).__enter__().__exit__())
        t.start()
        t.join()


def test_reports_peak_of_real_overlap():
    checker = ThreadSafetyChecker(enabled=True)
    with pytest.warns(ThreadSafetyWarning, match="Method 'predict' accessed by 2 different"):
        overlap(checker, "predict", 5)
    report = checker.get_report_dict()
    assert report["methods"]["predict"]["peak_concurrency"] == 5
    assert report["methods"]["predict"]["calls"] == 5
    assert report["methods"]["predict"]["threads"] == 5
    assert report["methods"]["predict"]["active_threads"] == 0
    assert report["concurrent_accesses"] == {"predict": 5}
    expected = "⚠️  THREAD SAFETY: Method 'predict' accessed by 5 different threads concurrently."
    assert expected in report["warnings"]
    assert expected in checker.get_report()


def test_sequential_access_from_many_threads_is_not_reported():
    checker = ThreadSafetyChecker(enabled=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # any warning fails the test
        sequential(checker, "predict", 5)
    report = checker.get_report_dict()
    assert report["methods"]["predict"]["threads"] == 5
    assert report["methods"]["predict"]["peak_concurrency"] == 1
    assert report["concurrent_accesses"] == {}
    assert report["warnings"] == []
    assert "No thread safety issues detected." in checker.get_report()


def test_reentrant_calls_on_one_thread_are_not_concurrency():
    checker = ThreadSafetyChecker(enabled=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with checker.track_execution("m"):
            with checker.track_execution("m"):
                assert checker.check_method_access("m") == 1
    assert checker.get_report_dict()["methods"]["m"]["peak_concurrency"] == 1


def test_check_method_access_sees_threads_inside():
    checker = ThreadSafetyChecker(enabled=True)
    entered, release = threading.Event(), threading.Event()

    def hold():
        with checker.track_execution("fit"):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert entered.wait(10)
    with pytest.warns(ThreadSafetyWarning, match="Method 'fit' accessed by 2 different threads"):
        assert checker.check_method_access("fit") == 2
    release.set()
    t.join()
    assert checker.check_method_access("fit") == 1


def test_strict_mode_raises_and_leaves_no_active_entry():
    checker = ThreadSafetyChecker(enabled=True, strict_mode=True)
    entered, release = threading.Event(), threading.Event()

    def hold():
        with checker.track_execution("m"):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(10)
    with pytest.raises(ThreadSafetyError, match="accessed by 2 different threads concurrently"):
        with checker.track_execution("m"):
            pass
    release.set()
    t.join()
    assert checker.get_report_dict()["methods"]["m"]["active_threads"] == 0


def test_thread_safe_methods_are_tracked_only_while_a_checker_is_active():
    class A(ThreadSafeAdapter):
        __thread_safe__ = True

        @thread_safe_method
        @tool
        def work(self, barrier):
            barrier.wait(10)

    a = A()
    barrier = threading.Barrier(3)
    checker = ThreadSafetyChecker(enabled=True)
    with pytest.warns(ThreadSafetyWarning):
        ts = [threading.Thread(target=a.work, args=(barrier,)) for _ in range(3)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    assert checker.get_report_dict()["methods"]["work"]["peak_concurrency"] == 3
    checker.disable()
    a.work(threading.Barrier(1))
    assert checker.get_report_dict()["methods"]["work"]["calls"] == 3
    assert tsc.active_checkers() == []


def test_context_manager_resets_and_deactivates():
    checker = ThreadSafetyChecker(enabled=False)
    assert checker not in tsc.active_checkers()
    with checker as c:
        assert c is checker and checker in tsc.active_checkers()
        with tsc.track_all("x"):
            pass
    assert checker not in tsc.active_checkers()
    assert checker.get_report_dict()["methods"]["x"]["calls"] == 1
    checker.reset()
    assert checker.get_report_dict()["methods"] == {}


def test_unsafe_library_warning_and_safe_libraries():
    checker = ThreadSafetyChecker(enabled=True)
    with pytest.warns(ThreadSafetyWarning) as record:
        found = checker.check_library_safety("pandas")
    assert len(found) == 1
    assert found[0].splitlines()[0] == "⚠️  THREAD SAFETY: Unsafe library 'pandas' detected"
    assert "Workaround:" in found[0]
    assert str(record[0].message) == found[0]
    assert checker.check_library_safety("pandas") == []        # reported once
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for lib in ["numpy", "scipy", "torch", "polars", "sklearn", "requests", "unknown_lib"]:
            assert checker.check_library_safety(lib) == []
    assert checker.get_report_dict()["unsafe_libraries"] == ["pandas"]


def test_library_scan_of_sys_modules(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", type(sys)("matplotlib"))
    checker = ThreadSafetyChecker(enabled=True)
    with pytest.warns(ThreadSafetyWarning, match="Unsafe library 'matplotlib'"):
        found = checker.check_library_safety()
    assert any("'matplotlib'" in m for m in found)
    strict = ThreadSafetyChecker(enabled=True, strict_mode=True)
    with pytest.raises(ThreadSafetyError, match="Unsafe library 'matplotlib'"):
        strict.check_library_safety(["matplotlib"])


def test_compatibility_table():
    path = os.path.join(os.path.dirname(tsc.__file__), "compatibility.json")
    with open(path, encoding="utf-8") as fh:
        entries = json.load(fh)["libraries"]
    by_name = {e["library"]: e for e in entries}
    for lib in ["numpy", "scipy", "torch", "tensorflow", "scikit-learn", "polars", "onnxruntime",
                "requests", "httpx", "pandas", "matplotlib", "sqlite3"]:
        assert by_name[lib]["status"] in {"safe", "unsafe", "conditional"}
        assert by_name[lib]["reason"] and by_name[lib]["workaround"]
    assert {e["library"] for e in entries if e["status"] == "unsafe"} == {"pandas", "matplotlib", "sqlite3"}
    assert tsc.library_info("sklearn")["library"] == "scikit-learn"
    assert tsc.library_info("matplotlib.pyplot")["status"] == "unsafe"
    assert tsc.library_info("nope") is None


def test_adapter_declaration_checks():
    class Undeclared(ThreadSafeAdapter):
        pass

    class Declared(ThreadSafeAdapter):
        __thread_safe__ = True

    checker = ThreadSafetyChecker(enabled=True)
    with pytest.warns(ThreadSafetyWarning, match=r"^⚠️  Adapter Undeclared does not declare thread safety\."):
        assert checker.check_adapter(Undeclared()) is False
    assert checker.check_adapter(Declared) is True
    assert checker.get_report_dict()["undeclared_adapters"] == ["Undeclared"]

    with pytest.warns(ThreadSafetyWarning, match="Adapter Undeclared does not declare"):
        assert tsc.require_thread_safe_adapter(Undeclared) is Undeclared
    assert tsc.require_thread_safe_adapter(Declared) is Declared
    inst = Declared()
    assert tsc.require_thread_safe_adapter(inst) is inst
    with pytest.raises(ThreadSafetyError, match="Adapter Undeclared does not declare"):
        tsc.require_thread_safe_adapter(Undeclared(), strict=True)

    @tsc.require_thread_safe_adapter
    def use(adapter, x):
        return x

    assert use(Declared(), 5) == 5
    tsc.enable_checking(strict_mode=True)
    with pytest.raises(ThreadSafetyError):
        use(Undeclared(), 5)


def test_global_checker_helpers_and_decorator():
    @tsc.check_thread_safe
    def handler(barrier):
        barrier.wait(10)
        return 1

    handler(threading.Barrier(1))            # nothing active: not recorded
    g = tsc.enable_checking()
    assert g is tsc.get_global_checker() and g.enabled and g in tsc.active_checkers()
    barrier = threading.Barrier(4)
    with pytest.warns(ThreadSafetyWarning, match="Method 'handler'"):
        ts = [threading.Thread(target=handler, args=(barrier,)) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    assert g.get_report_dict()["methods"]["handler"] == {
        "calls": 4, "threads": 4, "peak_concurrency": 4, "active_threads": 0,
        "total_time": g.get_report_dict()["methods"]["handler"]["total_time"]}
    tsc.disable_checking()
    assert not g.enabled and g not in tsc.active_checkers()
    assert "handler" in g.get_report()


def test_disabled_checker_records_nothing():
    checker = ThreadSafetyChecker(enabled=False)
    with checker.track_execution("m"):
        pass
    assert checker.check_method_access("m") == 0
    assert checker.get_report_dict()["methods"] == {}
