"""Adapters that break the seed's rules on purpose, for the thread-safety
checker's tests (tests/python/test_race_detector.py, tests/cli/test_check.py).

``RacyAdapter`` declares ``__thread_safe__ = True`` but commits the seed's
Pitfall 1 verbatim (``self.counter += 1`` without the lock) and appends to a
shared list without the lock. The tools are microseconds long: on a GIL build
their calls overlap only because the checks stagger call starts
(200 us by default with checks on; ``SNAKEPIT_THREAD_SAFETY_STAGGER_US``). The
lines the checker must name carry a ``# RACE`` marker; the tests find them by
that marker.

``LazyImportAdapter`` imports ``sqlite3`` (thread-unsafe in the compatibility
table) inside a tool. ``UndeclaredAdapter`` lacks ``__thread_safe__``.
"""

import time

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool


class RacyAdapter(ThreadSafeAdapter):
    __thread_safe__ = True          # declared, but see below

    def __init__(self):
        super().__init__()
        self.counter = 0
        self.history = []

    @thread_safe_method
    @tool(description="Seed Pitfall 1: increment a shared counter without the lock")
    def increment(self) -> dict:
        self.counter += 1  # RACE counter
        return {"counter": self.counter}

    @thread_safe_method
    @tool(description="Append to a shared list without the lock, after some work")
    def record(self, value: int = 1, work_ms: float = 1.0) -> dict:
        time.sleep(work_ms / 1000.0)
        self.history.append(value)  # RACE history
        return {"recorded": value}

    @thread_safe_method
    @tool(description="Read the counter under the lock (correct)")
    def get_counter(self) -> dict:
        with self.acquire_lock():
            return {"counter": self.counter, "history": len(self.history)}


class LazyImportAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="Import sqlite3 inside the call and use a private in-memory database")
    def query(self, x: int = 1) -> dict:
        import sqlite3  # LAZY IMPORT
        con = sqlite3.connect(":memory:")
        try:
            return {"value": con.execute("select ?", (x,)).fetchone()[0]}
        finally:
            con.close()


class UndeclaredAdapter(ThreadSafeAdapter):
    # __thread_safe__ not declared (seed Pitfall 4)

    @thread_safe_method
    @tool(description="Does nothing")
    def noop(self) -> dict:
        return {}
