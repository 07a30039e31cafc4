"""The seed guide's (README_THREADING.md) adapter and its three testing methods.

``MyAdapter`` is assembled verbatim from "Writing Thread-Safe Adapters" steps 1-4;
only ``load_model`` is ours (a model whose predict() takes 2 ms and releases the
GIL, so threads really overlap). The three test methods follow the guide; the
checker is created inside the test instead of at module level (a module-level
checker would observe every other test too), and method 3 increments the counter
under ``acquire_lock()`` with a deliberate thread switch inside, so the assertion
would fail if the lock did not exclude other threads.
"""

import concurrent.futures
import threading
import time

import pytest

# --- seed: Step 1 -------------------------------------------------------------
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.thread_safety_checker import ThreadSafetyChecker, ThreadSafetyWarning


class _Model:
    def predict(self, input_data):
        time.sleep(0.002)
        return f"pred:{input_data}"


def load_model():
    return _Model()


class MyAdapter(ThreadSafeAdapter):
    __thread_safe__ = True  # Required declaration

    # --- seed: Step 2 ---------------------------------------------------------
    def __init__(self):
        super().__init__()  # Initialize base class

        # Pattern 1: Shared read-only
        self.model = load_model()

        # Pattern 3: Shared mutable (will need locking)
        self.request_count = 0
        self.results = []

    # --- seed: Step 3 ---------------------------------------------------------
    @thread_safe_method
    @tool(description="Thread-safe prediction")
    def predict(self, input_data: str) -> dict:
        # Method is automatically tracked and protected
        result = self.model.predict(input_data)

        # Update shared state with lock
        with self.acquire_lock():
            self.request_count += 1

        return {"prediction": result}

    # --- seed: Step 4 ---------------------------------------------------------
    @thread_safe_method
    def get_stats(self) -> dict:
        # Read shared mutable state safely
        with self.acquire_lock():
            return {
                "request_count": self.request_count,
                "results_count": len(self.results)
            }


# --- seed: Method 1 (Thread Safety Checker) -------------------------------------

def test_concurrent_access():
    checker = ThreadSafetyChecker(enabled=True, strict_mode=False)
    adapter = MyAdapter()

    def make_request(i):
        adapter.predict(f"input_{i}")

    with pytest.warns(ThreadSafetyWarning, match="Method 'predict' accessed by"):
        threads = [threading.Thread(target=make_request, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    report = checker.get_report()
    print(report)
    data = checker.get_report_dict()
    peak = data["methods"]["predict"]["peak_concurrency"]
    assert data["methods"]["predict"]["calls"] == 100
    assert peak >= 2
    assert (f"⚠️  THREAD SAFETY: Method 'predict' accessed by {peak} different threads "
            f"concurrently.") in report
    assert adapter.get_stats() == {"request_count": 100, "results_count": 0}


# --- seed: Method 2 (Stress Testing) --------------------------------------------

def stress_test_adapter():
    adapter = MyAdapter()

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as executor:
        futures = [executor.submit(adapter.predict, f"input_{i}") for i in range(1000)]
        results = [f.result() for f in futures]

    assert len(results) == 1000
    print("Stress test passed!")
    return adapter, results


def test_stress():
    adapter, results = stress_test_adapter()
    assert sorted(r["prediction"] for r in results) == sorted(f"pred:input_{i}" for i in range(1000))
    assert adapter.request_count == 1000
    base = ThreadSafeAdapter.get_stats(adapter)     # MyAdapter overrides get_stats()
    assert base["total_requests"] == 1000
    assert base["active_requests"] == 0
    assert 2 <= base["peak_active_requests"] <= 20
    assert 2 <= len(base["thread_utilization"]) <= 20
    assert sum(t["requests_handled"] for t in base["thread_utilization"].values()) == 1000


# --- seed: Method 3 (Race Condition Detection), with the counter locked ----------

def test_race_conditions():
    adapter = MyAdapter()
    adapter.counter = 0

    def increment():
        for i in range(1000):
            with adapter.acquire_lock():
                value = adapter.counter
                if i % 10 == 0:
                    time.sleep(0)          # force a thread switch mid-update
                adapter.counter = value + 1

    threads = [threading.Thread(target=increment) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    print(f"Counter: {adapter.counter} (expected: 10000)")
    assert adapter.counter == 10000, "Race condition detected!"
