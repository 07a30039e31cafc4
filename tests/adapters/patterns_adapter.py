"""PatternsAdapter: the seed's three thread-safety patterns in one adapter.

1. shared read-only model loaded in ``__init__`` (a lookup table);
2. thread-local prediction cache (get_thread_local / set_thread_local);
3. shared counter incremented under ``acquire_lock()``.
"""

import threading

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool


def load_lookup_model():
    return {f"input_{i}": i * i for i in range(1000)}


class PatternsAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        # Pattern 1: loaded once, never modified.
        self.model = load_lookup_model()
        # Pattern 3: shared mutable state, guarded by acquire_lock().
        self.counter = 0
        self.cache_threads = set()

    @thread_safe_method
    @tool(description="Look up input_data in the shared model, through a per-thread cache")
    def predict(self, input_data: str) -> dict:
        # Pattern 2: each thread has its own cache.
        cache = self.get_thread_local("cache", {})
        cached = input_data in cache
        if cached:
            prediction = cache[input_data]
        else:
            prediction = self.model.get(input_data, len(input_data))
            cache[input_data] = prediction
            self.set_thread_local("cache", cache)
        with self.acquire_lock():
            self.counter += 1
            self.cache_threads.add(threading.current_thread().name)
        return {"prediction": prediction, "cached": cached}

    @thread_safe_method
    @tool(description="Predictions made so far and how many threads built a cache")
    def get_counter(self) -> dict:
        with self.acquire_lock():
            return {"counter": self.counter, "cache_threads": len(self.cache_threads)}
