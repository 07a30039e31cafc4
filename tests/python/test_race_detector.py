"""The thread-safety checker finds real races: unlocked shared-state writes,
unsafe imports (import hook, also inside a tool) and strict mode -- through
_host (as the worker runs adapters) and through direct, seed-style use.

Adapters: tests/adapters/racy_adapter.py, racy_pandas_adapter.py and
correct_adapter.py. Lines the checker must name carry "# RACE" / "# LAZY
IMPORT" / "# UNSAFE IMPORT" markers and are looked up by marker here.
"""

import copy
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings

import pytest

from snakepit_bridge import _host, _tsc_imports, _tsc_writes
from snakepit_bridge import thread_safety_checker as tsc
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method
from snakepit_bridge.thread_safety_checker import (ThreadSafetyChecker, ThreadSafetyError,
                                                   ThreadSafetyWarning)

ADAPTERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "adapters")


@pytest.fixture(autouse=True)
def _unhook_classes():
    """Each test starts as a fresh worker would: no class keeps write hooks."""
    yield
    for cls in list(_tsc_writes._watched):
        _tsc_writes.unwatch_class(cls)
    tsc.get_global_checker().strict_overlap = True


def marker_line(filename, marker):
    """1-based line of the only line of tests/adapters/<filename> containing marker."""
    path = os.path.join(ADAPTERS, filename)
    with open(path, encoding="utf-8") as fh:
        hits = [i for i, line in enumerate(fh, 1) if marker in line]
    assert len(hits) == 1, (filename, marker, hits)
    return os.path.realpath(path), hits[0]


def load(spec, threads=8, mode="1", monkeypatch=None):
    """_host.load as the worker runs it with checks on; calls are staggered as
    `snakepit check` staggers them, so even microsecond tools overlap."""
    monkeypatch.setenv("SNAKEPIT_THREAD_SAFETY_CHECK", mode)
    monkeypatch.setenv("SNAKEPIT_THREAD_SAFETY_STAGGER_US", "200")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ThreadSafetyWarning)
        return _host.load(spec, [], "w1", "p", "thread", threads)


def hammer(host, tools, threads=8, rounds=4):
    """Run every tool `rounds` times on each of `threads` worker-like threads
    (named like the worker's) started together; returns the (status, payload)s."""
    start = threading.Barrier(threads)
    out = []
    lock = threading.Lock()

    def run(i):
        host.register_thread(f"snakepit-w1-t{i + 1}")
        start.wait(10)
        for _ in range(rounds):
            for name, args in tools:
                r = host.invoke(name, json.dumps(args))
                with lock:
                    out.append(r)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ThreadSafetyWarning)
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return out


def report(host, args="{}"):
    """The checker's part of the worker's report (the manager's STATS request)."""
    full = json.loads(host.report(args))
    assert "error" not in full, full
    return full["thread_safety"]


def writes_by_attr(rep):
    return {w["attribute"]: w for w in rep["unlocked_writes"]}


# -- through the host, as the worker runs adapters ---------------------------------

def test_racy_adapter_flagged_with_attribute_lines_and_threads(monkeypatch):
    host = load("racy_adapter.RacyAdapter", monkeypatch=monkeypatch)
    results = hammer(host, [("increment", {}), ("record", {"value": 3}), ("get_counter", {})])
    assert all(s == 0 for s, _ in results)
    rep = report(host)
    found = writes_by_attr(rep)
    assert set(found) == {"counter", "history"}, rep["unlocked_writes"]

    path, line = marker_line("racy_adapter.py", "# RACE counter")
    counter = found["counter"]
    assert (os.path.realpath(counter["file"]), counter["line"]) == (path, line)
    assert counter["kind"] == "write" and counter["operation"] is None
    assert counter["function"] == "RacyAdapter.increment" and counter["tool"] == "increment"
    assert counter["class"] == "RacyAdapter"
    assert counter["thread"].startswith("snakepit-w1-t")
    assert counter["other_thread"].startswith("snakepit-w1-t")
    assert counter["thread"] != counter["other_thread"]
    assert counter["count"] >= 1 and counter["max_concurrent_calls"] >= 2
    assert f"Unlocked write to self.counter in RacyAdapter.increment at {counter['file']}:{line}" \
        in counter["message"]

    path, line = marker_line("racy_adapter.py", "# RACE history")
    history = found["history"]
    assert (os.path.realpath(history["file"]), history["line"]) == (path, line)
    assert history["kind"] == "mutation" and history["operation"] == "append"
    assert "Unlocked in-place change self.history.append()" in history["message"]

    assert rep["problems"] == 2
    assert any(m.startswith("⚠️  THREAD SAFETY: Unlocked write to self.counter") for m in rep["warnings"])
    # get_counter reads under the lock and never writes: not reported.
    assert all(w["tool"] != "get_counter" for w in rep["unlocked_writes"])


def test_correct_adapter_is_clean_under_the_same_load(monkeypatch):
    host = load("correct_adapter.CorrectAdapter", monkeypatch=monkeypatch)
    results = hammer(host, [("predict", {}), ("hit", {"key": "a"}), ("get_stats_snapshot", {})])
    assert all(s == 0 for s, _ in results), [p for s, p in results if s != 0][:1]
    rep = report(host)
    assert rep["unlocked_writes"] == []
    assert rep["problems"] == 0
    # The calls really overlapped: the absence of findings means something.
    assert rep["methods"]["predict"]["peak_concurrency"] >= 2
    assert rep["methods"]["hit"]["peak_concurrency"] >= 2
    a = host.adapter
    assert a.total_predictions == 32 and a.hits == {"a": 32} and a.done == 32
    assert len(a.prediction_log) == 32 and len(a.seen) == 8
    # Its containers and locks are the tracking kind, and still behave as before.
    assert isinstance(a.prediction_log, list) and type(a.prediction_log) is not list
    assert isinstance(a.acquire_lock(), _tsc_writes._TrackedLock)


def test_checks_off_installs_nothing(monkeypatch):
    monkeypatch.delenv("SNAKEPIT_THREAD_SAFETY_CHECK", raising=False)
    host = _host.load("correct_adapter.CorrectAdapter", [], "w1", "p", "thread", 8)
    cls = type(host.adapter)
    assert "__setattr__" not in cls.__dict__ and not _tsc_writes.is_watched(cls)
    assert type(host.adapter.prediction_log) is list
    assert type(host.adapter.acquire_lock()) is type(threading.RLock())
    assert not any(isinstance(f, _tsc_imports._MatrixFinder) for f in sys.meta_path)
    names = [t["name"] for t in json.loads(host.manifest())["tools"]]
    assert not any(n.startswith("_snakepit") for n in names)
    full = json.loads(host.report("{}"))
    assert full["worker_id"] == "w1" and full["thread_safety"] is None   # checks off
    assert host.adapter.get_stats()["thread_safety"] == {"enabled": False}


def test_checks_on_report_and_stats(monkeypatch):
    host = load("snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter",
                threads=4, monkeypatch=monkeypatch)
    tools = {t["name"]: t for t in json.loads(host.manifest())["tools"]}
    assert not any(n.startswith("_snakepit") for n in tools)  # reports are not tools
    hammer(host, [("sleep", {"seconds": 0.005})], threads=4, rounds=2)
    stats = json.loads(host.invoke("get_thread_stats", "{}")[1])
    ts = stats["thread_safety"]
    assert ts["enabled"] is True and ts["problems"] == 0
    assert ts["methods"]["sleep"]["peak_concurrency"] >= 2
    rep = report(host)
    assert rep["worker_id"] == "w1" and rep["pid"] == os.getpid() and rep["checks"] == "on"
    assert rep["thread_safe"] is True and rep["adapter_class"] == "ThreadedShowcaseAdapter"
    full = json.loads(host.report('{"reset": true}'))
    assert full["gil_enabled"] is bool(getattr(sys, "_is_gil_enabled", lambda: True)())
    assert full["threads"] == 4 and full["profile"] == "thread"
    assert report(host)["methods"] == {}
    # Bad arguments are reported in the text, never raised.
    assert "error" in json.loads(host.report("[1]"))
    assert "error" in json.loads(host.report("{not json"))


def test_strict_mode_raises_in_the_racing_call(monkeypatch):
    host = load("racy_adapter.RacyAdapter", mode="strict", monkeypatch=monkeypatch)
    results = hammer(host, [("increment", {})], rounds=3)
    failed = [json.loads(p) for s, p in results if s != 0]
    assert failed, "strict mode let an unlocked concurrent write through"
    types = {f["type"] for f in failed}
    assert types <= {"snakepit_bridge.thread_safety_checker.ThreadSafetyError"}, failed[0]
    assert any("Unlocked write to self.counter" in f["message"] for f in failed)
    # The strict error is raised before the write: only successful calls counted.
    ok = sum(1 for s, _ in results if s == 0)
    assert host.adapter.counter == ok


def test_strict_mode_refuses_undeclared_adapter_in_thread_profile(monkeypatch):
    monkeypatch.setenv("SNAKEPIT_THREAD_SAFETY_CHECK", "strict")
    with pytest.raises(ThreadSafetyError) as info:
        _host.load("racy_adapter.UndeclaredAdapter", [], "w1", "p", "thread", 8)
    text = str(info.value)
    assert text.startswith("⚠️  Adapter UndeclaredAdapter does not declare thread safety.")
    assert "refuse to start racy_adapter.UndeclaredAdapter in the thread profile" in text
    # The process profile runs one call at a time: no declaration needed.
    _host.load("racy_adapter.UndeclaredAdapter", [], "w1", "p", "process", 1)


# -- the import hook -------------------------------------------------------------------

def test_import_hook_fires_for_an_import_inside_a_tool(monkeypatch):
    monkeypatch.delitem(sys.modules, "sqlite3", raising=False)   # force a real import
    host = load("racy_adapter.LazyImportAdapter", monkeypatch=monkeypatch)
    assert "sqlite3" not in sys.modules
    host.register_thread("snakepit-w1-t1")
    with pytest.warns(ThreadSafetyWarning) as record:
        assert host.invoke("query", '{"x": 5}') == (0, '{"value":5}')
    path, line = marker_line("racy_adapter.py", "# LAZY IMPORT")
    messages = [str(r.message) for r in record]
    msg = next(m for m in messages if "'sqlite3'" in m)
    lines = msg.splitlines()
    assert lines[0] == "⚠️  THREAD SAFETY: Unsafe library 'sqlite3' detected"
    assert lines[1].startswith("  Imported at: ") and lines[1].endswith(
        f":{line} (during tool 'query' on thread 'snakepit-w1-t1')")
    assert "check_same_thread" in msg and "Workaround: Open one connection per thread" in msg
    lib = next(x for x in report(host)["libraries"] if x["library"] == "sqlite3")
    assert lib["tool"] == "query" and lib["thread"] == "snakepit-w1-t1"
    assert os.path.realpath(lib["imported_at"].rsplit(":", 1)[0]) == path


def test_import_hook_strict_mode_fails_the_import(monkeypatch):
    monkeypatch.delitem(sys.modules, "sqlite3", raising=False)
    checker = ThreadSafetyChecker(enabled=True, strict_mode=True)
    try:
        with pytest.raises(ThreadSafetyError, match="Unsafe library 'sqlite3' detected"):
            import sqlite3  # noqa: F401
        assert "sqlite3" not in sys.modules
    finally:
        checker.disable()
    assert not any(isinstance(f, _tsc_imports._MatrixFinder) for f in sys.meta_path)


def test_import_hook_ignores_missing_and_unlisted_modules():
    checker = ThreadSafetyChecker(enabled=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ImportError):
                import polars_is_not_installed_here  # noqa: F401
            import colorsys  # noqa: F401  (not in the table)
        assert checker.get_report_dict()["libraries"] == []
    finally:
        checker.disable()


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None,
                    reason=f"pandas is not installed for Python {sys.version.split()[0]} "
                           f"({sys.executable}); Debian: python3-pandas, for /usr/bin/python3")
def test_seed_pitfall_3_pandas():
    # A fresh interpreter, so the import hook sees pandas being imported.
    code = f"""
import json, os, sys, threading, warnings
sys.path[:0] = {[os.path.join(os.path.dirname(ADAPTERS), '..', 'python'), ADAPTERS]!r}
os.environ["SNAKEPIT_THREAD_SAFETY_CHECK"] = "1"
warnings.simplefilter("ignore")
from snakepit_bridge import _host
h = _host.load("racy_pandas_adapter.RacyPandasAdapter", [], "w1", "p", "thread", 8)
def run(i):
    h.register_thread(f"snakepit-w1-t{{i}}")
    for _ in range(3):
        assert h.invoke("process_data", "{{}}")[0] == 0
ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(json.loads(h.report("{{}}"))["thread_safety"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["unsafe_libraries"] == ["pandas"]
    pandas = next(x for x in rep["libraries"] if x["library"] == "pandas")
    path, line = marker_line("racy_pandas_adapter.py", "# UNSAFE IMPORT")
    assert pandas["imported_at"].endswith(f"racy_pandas_adapter.py:{line}") and pandas["tool"] is None
    assert any(x["library"] == "pandas" and x["status"] == "unsafe" for x in rep["imported_libraries"])
    path, line = marker_line("racy_pandas_adapter.py", "# RACE totals")
    (w,) = rep["unlocked_writes"]
    assert (w["attribute"], w["line"], w["tool"]) == ("totals", line, "process_data")
    assert rep["problems"] == 2


# -- direct use, as in the seed's "Testing for Thread Safety" ---------------------------

class Pitfall1(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        self.counter = 0

    @thread_safe_method
    def increment(self):
        time.sleep(0.002)
        self.counter += 1  # PITFALL 1

    @thread_safe_method
    def increment_locked(self):
        time.sleep(0.002)
        with self.acquire_lock():
            self.counter += 1

    @thread_safe_method
    def remember(self, value):
        time.sleep(0.002)
        cache = self.get_thread_local("cache", {})
        cache[value] = True
        self.set_thread_local("cache", cache)


def run_threads(fn, n=8):
    ts = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_seed_method_1_catches_pitfall_1_and_passes_patterns():
    checker = ThreadSafetyChecker(enabled=True, strict_mode=False)
    adapter = Pitfall1()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ThreadSafetyWarning)
        run_threads(lambda i: adapter.increment_locked())
        run_threads(lambda i: adapter.remember(i))
        assert checker.get_report_dict()["unlocked_writes"] == []
        run_threads(lambda i: adapter.increment())
    checker.disable()
    (w,) = checker.get_report_dict()["unlocked_writes"]
    here = os.path.realpath(__file__)
    with open(here, encoding="utf-8") as fh:
        line = next(i for i, text in enumerate(fh, 1) if "# PITFALL 1" in text)
    assert (w["attribute"], os.path.realpath(w["file"]), w["line"]) == ("counter", here, line)
    assert w["function"] == "Pitfall1.increment"
    assert "Unlocked shared-state writes (1):" in checker.get_report()


def test_sequential_calls_from_many_threads_are_not_races():
    checker = ThreadSafetyChecker(enabled=True)
    adapter = Pitfall1()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            t = threading.Thread(target=adapter.increment)
            t.start()
            t.join()
    assert checker.get_report_dict()["unlocked_writes"] == []
    checker.disable()


def test_calls_on_another_instance_do_not_count():
    checker = ThreadSafetyChecker(enabled=True)
    a, b = Pitfall1(), Pitfall1()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ThreadSafetyWarning)
        run_threads(lambda i: (a if i % 2 else b).increment_locked(), n=4)
        # One thread per instance: overlapping in time, but nothing shared.
        run_threads(lambda i: (a if i else b).increment(), n=2)
    assert checker.get_report_dict()["unlocked_writes"] == []
    checker.disable()


def test_writes_outside_calls_and_in_init_are_not_reported():
    checker = ThreadSafetyChecker(enabled=True)
    adapter = checker.watch(Pitfall1())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter.counter = 5                # not inside a tracked call
        Pitfall1().counter = 1             # construction of another instance
    assert checker.get_report_dict()["unlocked_writes"] == []
    checker.disable()


def test_deletion_and_dict_mutation_are_reported():
    class Shared(ThreadSafeAdapter):
        __thread_safe__ = True

        def __init__(self):
            super().__init__()
            self.table = {}
            self.tmp = 1

        @thread_safe_method
        def put(self, i, barrier):
            barrier.wait(10)
            self.table[i] = i
            barrier.wait(10)

        @thread_safe_method
        def drop(self, barrier):
            barrier.wait(10)
            if hasattr(self, "tmp"):
                try:
                    del self.tmp
                except AttributeError:
                    pass
            barrier.wait(10)

    checker = ThreadSafetyChecker(enabled=True)
    s = checker.watch(Shared())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ThreadSafetyWarning)
        barrier = threading.Barrier(3)
        run_threads(lambda i: s.put(i, barrier), n=3)
        barrier = threading.Barrier(2)
        run_threads(lambda i: s.drop(barrier), n=2)
    kinds = {(w["attribute"], w["kind"], w["operation"]) for w in checker.get_report_dict()["unlocked_writes"]}
    assert ("table", "mutation", "__setitem__") in kinds
    assert ("tmp", "delete", None) in kinds
    assert s.table == {0: 0, 1: 1, 2: 2}
    checker.disable()


# -- the instrumentation keeps semantics -------------------------------------------------

def test_tracked_containers_behave_like_the_builtins():
    # Every supported interpreter (3.11 to 3.14t) tells fresh containers from aliases.
    assert _tsc_writes.container_tracking_available()
    checker = ThreadSafetyChecker(enabled=True)

    class Holder(ThreadSafeAdapter):
        __thread_safe__ = True

    _tsc_writes.watch_class(Holder)
    try:
        h = Holder()
        h.items = [3, 1, 2]
        h.table = {"a": 1}
        h.tags = {"x"}
        alias = []
        h.aliased = alias                  # someone else holds it: stored as is
        assert h.aliased is alias and type(alias) is list
        assert type(h.items) is _tsc_writes._TrackedList
        h.items.sort(reverse=True)
        h.table.update(b=2)
        assert h.items == [3, 2, 1] and h.table == {"a": 1, "b": 2} and repr(h.tags) == "{'x'}"
        assert json.dumps({"i": h.items, "t": h.table}) == '{"i": [3, 2, 1], "t": {"a": 1, "b": 2}}'
        assert type(pickle.loads(pickle.dumps(h.items))) is list
        assert type(copy.copy(h.table)) is dict and copy.deepcopy(h.tags) == {"x"}
        h.items += [0]
        assert h.items == [3, 2, 1, 0] and type(h.items) is _tsc_writes._TrackedList
    finally:
        _tsc_writes.unwatch_class(Holder)
        checker.disable()
    assert "__setattr__" not in Holder.__dict__


SHARED_LIST = []


def test_fresh_containers_are_told_from_aliases_on_every_interpreter():
    # CPython 3.14 loads locals with borrowed references: an alias held by a
    # local then has no more references than a fresh list. Both must still be
    # told apart: aliases stored as is, fresh containers tracked.
    checker = ThreadSafetyChecker(enabled=True)

    class Holder:
        def assign(self, flag):
            alias = []
            self.fresh = []
            self.local = alias
            self.comp = [i for i in range(3)]
            self.called = list(alias)
            self.chained = also = {}
            self.glob = SHARED_LIST
            self.merged = alias if flag else []
            self.attr = self.fresh
            return alias, also

    _tsc_writes.watch_class(Holder)
    try:
        h = Holder()
        alias, also = h.assign(True)
        tracked = {k for k, v in vars(h).items() if type(v) in _tsc_writes.TRACKED_TYPES}
        assert tracked == {"fresh", "comp", "called", "attr"}, vars(h)   # attr is fresh
        assert h.local is alias and h.chained is also and h.glob is SHARED_LIST
        assert h.merged is alias and h.attr is h.fresh
    finally:
        _tsc_writes.unwatch_class(Holder)
        checker.disable()


def test_tracked_locks_keep_condition_semantics():
    inner = threading.RLock()
    lock = _tsc_writes.track_lock(inner)
    cond = threading.Condition(lock)
    ready = []

    def producer():
        time.sleep(0.01)
        with cond:
            ready.append(1)
            cond.notify()

    t = threading.Thread(target=producer)
    with cond:
        t.start()
        assert lock.held_by_me()
        assert cond.wait_for(lambda: ready, timeout=10)
        assert lock.held_by_me() and inner._is_owned()
        with lock:                      # re-entrant
            assert lock.held_by_me()
        assert lock.held_by_me()
    assert not lock.held_by_me()
    t.join()
    plain = _tsc_writes.track_lock(threading.Lock())
    with plain:
        assert plain.held_by_me() and plain.locked()
    assert not plain.locked()


def test_locks_held_elsewhere_count():
    """A lock on a helper object (self.store.lock), in a local variable, or a
    Condition on the adapter guards the write: no report."""
    class Store:
        def __init__(self):
            self.lock = threading.Lock()

    class Helpers(ThreadSafeAdapter):
        __thread_safe__ = True

        def __init__(self, shared_lock):
            super().__init__()
            self.store = Store()
            self.cond = threading.Condition()
            self._shared = shared_lock
            self.a = self.b = self.c = 0

        @thread_safe_method
        def work(self, barrier):
            barrier.wait(10)
            with self.store.lock:
                self.a += 1
            lock = self._shared
            with lock:
                self.b += 1
            with self.cond:
                self.c += 1
            barrier.wait(10)

    checker = ThreadSafetyChecker(enabled=True)
    h = Helpers(threading.RLock())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ThreadSafetyWarning)
        barrier = threading.Barrier(4)
        run_threads(lambda i: h.work(barrier), n=4)
    assert checker.get_report_dict()["unlocked_writes"] == []
    assert (h.a, h.b, h.c) == (4, 4, 4)
    checker.disable()
