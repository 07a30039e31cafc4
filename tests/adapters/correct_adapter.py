"""CorrectAdapter: the seed's three patterns, done right, in the ways adapter
authors write them -- the thread-safety checker must find nothing here
(tests/python/test_race_detector.py, tests/cli/test_check.py).

1. shared read-only state: a model table built in ``__init__``;
2. thread-local state: ``get_thread_local``/``set_thread_local`` and a
   ``threading.local()`` attribute;
3. locked shared state: ``acquire_lock()``, the adapter's own ``Lock``, a
   ``Condition``, and a module-level lock.

Each tool sleeps first (the request's real work) so calls overlap.
"""

import threading
import time

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool

_SEEN_LOCK = threading.Lock()


class CorrectAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        # Pattern 1: loaded once, never modified.
        self.model = {f"input_{i}": i * i for i in range(100)}
        # Pattern 2: per-thread scratch space.
        self.scratch = threading.local()
        # Pattern 3: shared and mutable, always changed under a lock.
        self.total_predictions = 0
        self.prediction_log = []
        self.hits = {}
        self.seen = set()
        self.done = 0
        self._stats_lock = threading.Lock()
        self._cond = threading.Condition()

    @thread_safe_method
    @tool(description="Predict through a per-thread cache; log under acquire_lock()")
    def predict(self, input_data: str = "input_7", work_ms: float = 2.0) -> dict:
        time.sleep(work_ms / 1000.0)
        cache = self.get_thread_local("cache", {})
        if input_data not in cache:
            cache[input_data] = self.model.get(input_data, -1)
            self.set_thread_local("cache", cache)
        self.scratch.last = input_data
        with self.acquire_lock():
            self.prediction_log.append({"prediction": cache[input_data], "timestamp": time.time()})
            self.total_predictions += 1
        return {"prediction": cache[input_data]}

    @thread_safe_method
    @tool(description="Count hits under the adapter's own lock, a module lock and a Condition")
    def hit(self, key: str = "k", work_ms: float = 2.0) -> dict:
        time.sleep(work_ms / 1000.0)
        with self._stats_lock:
            self.hits[key] = self.hits.get(key, 0) + 1
        with _SEEN_LOCK:
            self.seen.add(threading.current_thread().name)
        with self._cond:
            self.done += 1
            self._cond.notify_all()
        return {"key": key}

    @thread_safe_method
    @tool(description="Read the shared state under the lock")
    def get_stats_snapshot(self) -> dict:
        with self.acquire_lock():
            total, log = self.total_predictions, len(self.prediction_log)
        with self._stats_lock:
            hits = dict(self.hits)
        return {"total_predictions": total, "log": log, "hits": hits}


class PickyAdapter(CorrectAdapter):
    """CorrectAdapter plus a tool whose generated arguments are always refused,
    so `snakepit check` cannot exercise it without --args."""

    @thread_safe_method
    @tool(description="Scale by a factor that must be above 100")
    def scale(self, factor: int) -> dict:
        if factor <= 100:
            raise ValueError(f"factor must be above 100, got {factor}")
        return {"scaled": factor * 2}
