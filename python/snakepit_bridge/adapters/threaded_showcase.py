"""ThreadedShowcaseAdapter: the demo adapter of the thread profile.

It shows the three thread-safety patterns on one instance shared by all the
worker's threads:

1. shared read-only state -- ``self.config``, set in ``__init__`` only;
2. per-thread state -- each thread's NumPy random generator (thread-local);
3. shared mutable state -- ``self.total_computations``, changed under
   ``acquire_lock()`` and only for the instant of the update.

NumPy releases the GIL inside ``np.dot`` and reductions, so
``compute_intensive`` / ``matrix_multiply`` run in parallel on any Python;
``stress_test`` is pure Python and runs in parallel on a free-threaded build;
``ping`` is the cheap no-op used to measure per-call overhead.

NumPy is imported by the tools that use it, not by the module: on a Python
without NumPy (a free-threaded 3.14t build, for one) those tools fail with a
``MissingDependency`` error and every other tool works.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.optional import require

if TYPE_CHECKING:
    import numpy as np

MAX_MATRIX_SIZE = 4096
MAX_STRESS_ITERATIONS = 10_000_000


class ThreadedShowcaseAdapter(ThreadSafeAdapter):
    """Demo tools for the thread profile (NumPy work, stats, echo, sleep)."""

    __thread_safe__ = True

    def __init__(self) -> None:
        super().__init__()
        # Pattern 1: shared read-only configuration.
        self.config = {"max_matrix_size": MAX_MATRIX_SIZE,
                       "max_stress_iterations": MAX_STRESS_ITERATIONS}
        # Pattern 3: shared mutable state, only touched under acquire_lock().
        self.total_computations = 0

    def _count(self) -> int:
        with self.acquire_lock():
            self.total_computations += 1
            return self.total_computations

    def _rng(self) -> "np.random.Generator":
        # Pattern 2: numpy Generators are not thread-safe; one per thread.
        rng = self.get_thread_local("rng")
        if rng is None:
            rng = require("numpy").random.default_rng()
            self.set_thread_local("rng", rng)
        return rng

    @thread_safe_method
    @tool(description="Cheap health check; returns the thread that served it")
    def ping(self) -> Dict[str, Any]:
        return {"status": "ok", "thread": threading.current_thread().name}

    @thread_safe_method
    @tool(description="Sum, sum of squares, mean, std, min and max of a list of numbers (NumPy)")
    def compute_intensive(self, data: list) -> Dict[str, Any]:
        np = require("numpy")
        arr = np.asarray(data, dtype=np.float64).ravel()
        out: Dict[str, Any] = {"count": int(arr.size), "thread": threading.current_thread().name}
        if arr.size == 0:
            out.update(sum=0.0, sum_of_squares=0.0, mean=None, std=None, min=None, max=None)
        else:
            out.update(sum=float(arr.sum()), sum_of_squares=float(np.dot(arr, arr)),
                       mean=float(arr.mean()), std=float(arr.std()),
                       min=float(arr.min()), max=float(arr.max()))
        out["computation"] = self._count()
        return out

    @thread_safe_method
    @tool(description="Matrix product a.b, or of two random size x size matrices (shape + checksum)")
    def matrix_multiply(self, a: list = None, b: list = None, size: int = 0) -> Dict[str, Any]:
        np = require("numpy")
        start = time.perf_counter()
        if size and size > 0:
            if size > self.config["max_matrix_size"]:
                raise ValueError(f"size must be <= {self.config['max_matrix_size']}, got {size}")
            rng = self._rng()
            x = rng.random((size, size))
            y = rng.random((size, size))
            product = np.dot(x, y)          # releases the GIL
            result: Dict[str, Any] = {"shape": list(product.shape),
                                      "checksum": float(product.sum())}
        elif a is not None and b is not None:
            product = np.dot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
            result = {"shape": list(product.shape), "result": product.tolist(),
                      "checksum": float(np.sum(product))}
        else:
            raise ValueError("matrix_multiply needs both 'a' and 'b', or 'size' > 0")
        self._count()
        result["elapsed_ms"] = (time.perf_counter() - start) * 1000.0
        result["thread"] = threading.current_thread().name
        return result

    @thread_safe_method
    @tool(description="Transform each item: numbers squared, strings upper-cased, "
                      "lists summed, anything else returned unchanged")
    def batch_process(self, items: list) -> Dict[str, Any]:
        results: List[Any] = []
        for item in items:
            if isinstance(item, bool) or item is None:
                results.append(item)
            elif isinstance(item, (int, float)):
                results.append(item * item)
            elif isinstance(item, str):
                results.append(item.upper())
            elif isinstance(item, list):
                np = require("numpy")
                results.append(float(np.sum(np.asarray(item, dtype=np.float64))))
            else:
                results.append(item)
        self._count()
        return {"results": results, "count": len(results),
                "thread": threading.current_thread().name}

    @thread_safe_method
    @tool(description="CPU stress: a pure-Python loop (runs in parallel on a free-threaded "
                      "build) and the sum of 0..iterations-1")
    def stress_test(self, iterations: int = 1000) -> Dict[str, Any]:
        if iterations < 0 or iterations > self.config["max_stress_iterations"]:
            raise ValueError(f"iterations must be in 0..{self.config['max_stress_iterations']}")
        start = time.perf_counter()
        acc = 0
        # Bound once: in the loop, a shared constant's reference count would be
        # touched by every thread on every turn (free-threaded builds), which
        # costs more than the arithmetic (docs/threading.md).
        modulus = 1_000_000_007
        for i in range(iterations):
            acc = (acc + i * i) % modulus
        self._count()
        return {"iterations": iterations, "result": acc,
                "vector_sum": float(iterations * (iterations - 1) // 2),
                "elapsed_ms": (time.perf_counter() - start) * 1000.0,
                "thread": threading.current_thread().name}

    @thread_safe_method
    @tool(description="Request statistics of this worker process (per-thread utilization)")
    def get_thread_stats(self) -> Dict[str, Any]:
        stats = self.get_stats()
        with self.acquire_lock():
            stats["total_computations"] = self.total_computations
        return stats

    @thread_safe_method
    @tool(description="Sleep for the given number of seconds (releases the GIL)")
    def sleep(self, seconds: float) -> Dict[str, Any]:
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        time.sleep(seconds)
        return {"slept": seconds, "thread": threading.current_thread().name}

    @thread_safe_method
    @tool(description="Stream the numbers 1..count, one chunk every interval seconds "
                      "(try: snakepit exec --stream default count_up '{\"count\": 5}')",
          supports_streaming=True)
    def count_up(self, count: int = 5, interval: float = 0.5) -> Iterator[Dict[str, Any]]:
        if count < 0 or interval < 0:
            raise ValueError("count and interval must be >= 0")
        for n in range(1, count + 1):
            if interval:
                time.sleep(interval)
            yield {"n": n}

    @thread_safe_method
    @tool(description="Return the arguments unchanged")
    def echo(self, **kwargs: Any) -> Dict[str, Any]:
        return kwargs
