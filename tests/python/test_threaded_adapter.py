"""ThreadSafeAdapter: lock, thread-local storage and statistics under real threads."""

import threading
import time

import pytest

from snakepit_bridge.base_adapter_threaded import (ThreadSafeAdapter, thread_safe_method,
                                                   threads_from_env, tool)


class Counter(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        self.value = 0
        self.inside = 0
        self.max_inside = 0

    @thread_safe_method
    @tool
    def locked_increment(self):
        with self.acquire_lock():
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
            v = self.value
            time.sleep(0)           # yield: without the lock, updates get lost
            self.value = v + 1
            self.inside -= 1

    @thread_safe_method
    def wait_on(self, event, barrier=None):
        if barrier is not None:
            barrier.wait()
        event.wait(10)
        return threading.current_thread().name

    @thread_safe_method
    def explode(self):
        raise RuntimeError("x")


def run_threads(n, target, *args):
    threads = [threading.Thread(target=target, args=args, name=f"worker-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return threads


def test_lock_gives_mutual_exclusion():
    a = Counter()
    start = threading.Barrier(8)

    def work():
        start.wait()
        for _ in range(100):
            a.locked_increment()

    run_threads(8, work)
    assert a.value == 800
    assert a.max_inside == 1


def test_unlocked_read_modify_write_loses_updates():
    """Negative control: the same pattern without the lock does lose updates,
    so test_lock_gives_mutual_exclusion can fail if the lock is broken."""
    box = {"v": 0}
    start = threading.Barrier(8)

    def work():
        start.wait()
        for _ in range(100):
            v = box["v"]
            time.sleep(0)
            box["v"] = v + 1

    run_threads(8, work)
    assert box["v"] < 800


def test_lock_is_reentrant_and_shared():
    a = Counter()
    with a.acquire_lock():
        with a.acquire_lock():
            got = []
            t = threading.Thread(target=lambda: got.append(a.acquire_lock().acquire(timeout=0.05)))
            t.start()
            t.join()
            assert got == [False]     # another thread is excluded while we hold it
    assert a.acquire_lock().acquire(timeout=1)
    a.acquire_lock().release()


def test_thread_local_isolation_and_clear():
    a = Counter()
    barrier = threading.Barrier(4)
    seen = {}
    errors = []

    def work(i):
        try:
            assert a.get_thread_local("k", "default") == "default"
            a.set_thread_local("k", i)
            a.set_thread_local("other", [i])
            barrier.wait()              # all four values exist at the same time
            seen[i] = (a.get_thread_local("k"), a.get_thread_local("other"))
            a.clear_thread_local("k")
            assert a.get_thread_local("k") is None
            assert a.get_thread_local("other") == [i]
            a.clear_thread_local()
            assert a.get_thread_local("other", "gone") == "gone"
        except Exception as exc:        # surface assertion errors from threads
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert seen == {i: (i, [i]) for i in range(4)}
    assert a.get_thread_local("k") is None          # main thread never set it


def test_stats_count_active_peak_and_per_thread(monkeypatch):
    monkeypatch.setenv("SNAKEPIT_THREADS", "16")
    a = Counter()
    release = threading.Event()
    barrier = threading.Barrier(6)
    threads = [threading.Thread(target=a.wait_on, args=(release, barrier), name=f"t{i}")
               for i in range(5)]
    for t in threads:
        t.start()
    barrier.wait()
    deadline = time.time() + 5
    while a.get_stats()["active_requests"] < 5 and time.time() < deadline:
        time.sleep(0.005)
    during = a.get_stats()
    release.set()
    for t in threads:
        t.join()
    after = a.get_stats()

    assert during["active_requests"] == 5
    assert during["thread_utilization"]["t0"] == {"requests_handled": 1, "active": 1}
    assert after["active_requests"] == 0
    assert after["total_requests"] == 5
    assert after["peak_active_requests"] == 5
    assert after["max_workers"] == 16
    assert after["thread_utilization"] == {f"t{i}": {"requests_handled": 1, "active": 0}
                                           for i in range(5)}

    with pytest.raises(RuntimeError):
        a.explode()
    final = a.get_stats()
    assert final["failed_requests"] == 1 and final["total_requests"] == 6
    assert final["active_requests"] == 0


def test_track_request_context_manager():
    a = Counter()
    with a.track_request():
        with a.track_request():
            assert a.get_stats()["active_requests"] == 2
    s = a.get_stats()
    assert (s["total_requests"], s["active_requests"], s["peak_active_requests"]) == (2, 0, 2)
    name = threading.current_thread().name
    assert s["thread_utilization"][name] == {"requests_handled": 2, "active": 0}


def test_max_workers_from_env(monkeypatch):
    monkeypatch.delenv("SNAKEPIT_THREADS", raising=False)
    assert Counter().get_stats()["max_workers"] == 1
    monkeypatch.setenv("SNAKEPIT_THREADS", "garbage")
    assert threads_from_env() == 1
    monkeypatch.setenv("SNAKEPIT_THREADS", "8")
    assert Counter().max_workers == 8
    assert ThreadSafeAdapter(max_workers=3).max_workers == 3


def test_state_exists_without_super_init():
    class Forgetful(ThreadSafeAdapter):
        def __init__(self):            # no super().__init__()
            self.x = 1

        @thread_safe_method
        def go(self):
            with self.acquire_lock():
                return self.x

    f = Forgetful()
    assert f.go() == 1
    assert f.get_stats()["total_requests"] == 1


def test_thread_safe_method_on_plain_object_just_calls():
    class Plain:
        @thread_safe_method
        def go(self, x):
            return x * 2
    assert Plain().go(4) == 8


def test_overridden_track_request_is_used():
    events = []

    class Custom(ThreadSafeAdapter):
        def track_request(self):
            events.append("track")
            return super().track_request()

        @thread_safe_method
        def go(self):
            return 1

    c = Custom()
    assert c.go() == 1
    assert events == ["track"]
    assert c.get_stats()["total_requests"] == 1
