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

Three tools show what a call can do beyond returning a value: ``count_up``
streams, ``chat`` keeps a conversation in its session's state
(``current().session``), and ``relay`` / ``ask_host`` call another tool and a
function of the host program through the manager (``current().call`` and
``current().call_host``).

NumPy is imported by the tools that use it, not by the module: on a Python
without NumPy (a free-threaded 3.14t build, for one) those tools fail with a
``MissingDependency`` error and every other tool works.

Snakepit's ThreadedShowcaseAdapter, whose path this is, had other parameters:
they are accepted too (``ping(message)``, ``compute_intensive(iterations)``,
``matrix_multiply(input_vector)`` through shared read-only weights,
``batch_process(delay_ms)``, ``stress_test(duration_ms, complexity)``), as are
its ``get_adapter_stats``, ``clear_caches`` and ``get_history`` tools, so
callers written for it keep working.
"""

from __future__ import annotations

import collections
import math
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.context import current
from snakepit_bridge.optional import require

if TYPE_CHECKING:
    import numpy as np

MAX_MATRIX_SIZE = 4096
MAX_STRESS_ITERATIONS = 10_000_000
MAX_STRESS_MS = 60_000
#: Layers of the model matrix_multiply(input_vector) runs (Snakepit's shapes).
LAYERS = ((100, 100), (100, 50), (50, 10))
HISTORY = 1000      # batch_process entries kept for get_history
#: Messages a chat session keeps: its state lives as long as the session, so
#: it is bounded like every other per-worker memory of this adapter.
CHAT_HISTORY = 20


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
        self.history: "collections.deque" = collections.deque(maxlen=HISTORY)
        self._weights: Optional[list] = None    # built once, then read-only

    def _count(self) -> int:
        with self.acquire_lock():
            self.total_computations += 1
            return self.total_computations

    def _layers(self) -> list:
        # Pattern 1, built on first use (NumPy is optional): seeded, so every
        # worker computes the same model; never modified once published.
        weights = self._weights
        if weights is None:
            np = require("numpy")
            with self.acquire_lock():
                if self._weights is None:
                    rng = np.random.default_rng(0)
                    self._weights = [rng.standard_normal(shape) for shape in LAYERS]
                weights = self._weights
        return weights

    def _rng(self) -> "np.random.Generator":
        # Pattern 2: numpy Generators are not thread-safe; one per thread.
        rng = self.get_thread_local("rng")
        if rng is None:
            rng = require("numpy").random.default_rng()
            self.set_thread_local("rng", rng)
        return rng

    @thread_safe_method
    @tool(description="Cheap health check; returns the thread that served it")
    def ping(self, message: Optional[str] = None) -> Dict[str, Any]:
        out = {"status": "ok", "thread": threading.current_thread().name}
        if message is not None:
            out.update(message=message, timestamp=time.time())
        return out

    @thread_safe_method
    @tool(description="Sum, sum of squares, mean, std, min and max of a list of numbers (NumPy)")
    def compute_intensive(self, data: list, iterations: int = 0) -> Dict[str, Any]:
        np = require("numpy")
        if iterations < 0 or iterations > MAX_STRESS_ITERATIONS:
            raise ValueError(f"iterations must be in 0..{MAX_STRESS_ITERATIONS}")
        arr = np.asarray(data, dtype=np.float64).ravel()
        out: Dict[str, Any] = {"count": int(arr.size), "thread": threading.current_thread().name}
        if arr.size == 0:
            out.update(sum=0.0, sum_of_squares=0.0, mean=None, std=None, min=None, max=None)
        else:
            out.update(sum=float(arr.sum()), sum_of_squares=float(np.dot(arr, arr)),
                       mean=float(arr.mean()), std=float(arr.std()),
                       min=float(arr.min()), max=float(arr.max()))
        if iterations and arr.size:
            # Snakepit's workload: x <- sin(x) cos(x) + 0.1 x, `iterations` times.
            x = arr.copy()
            for _ in range(iterations):
                x = np.sin(x) * np.cos(x) + x * 0.1
            out.update(result=float(x.mean()), iterations=iterations, input_size=int(arr.size))
        out["computation"] = self._count()
        return out

    @thread_safe_method
    @tool(description="Matrix product a.b, or of two random size x size matrices (shape + checksum)")
    def matrix_multiply(self, a: list = None, b: list = None, size: int = 0,
                        input_vector: list = None) -> Dict[str, Any]:
        np = require("numpy")
        start = time.perf_counter()
        if input_vector is not None:
            x = np.asarray(input_vector, dtype=np.float64)
            if x.shape != (LAYERS[0][0],):
                raise ValueError(f"input_vector must hold {LAYERS[0][0]} numbers, "
                                 f"got shape {list(x.shape)}")
            w1, w2, w3 = self._layers()
            out = np.maximum(0, x @ w1)         # ReLU layers; NumPy releases the GIL
            out = np.maximum(0, out @ w2) @ w3
            result: Dict[str, Any] = {"output": out.tolist(), "input_size": int(x.size),
                                      "output_size": int(out.size)}
        elif size and size > 0:
            if size > self.config["max_matrix_size"]:
                raise ValueError(f"size must be <= {self.config['max_matrix_size']}, got {size}")
            rng = self._rng()
            x = rng.random((size, size))
            y = rng.random((size, size))
            product = np.dot(x, y)          # releases the GIL
            result = {"shape": list(product.shape), "checksum": float(product.sum())}
        elif a is not None and b is not None:
            product = np.dot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
            result = {"shape": list(product.shape), "result": product.tolist(),
                      "checksum": float(np.sum(product))}
        else:
            raise ValueError("matrix_multiply needs both 'a' and 'b', 'size' > 0, "
                             "or 'input_vector'")
        self._count()
        result["elapsed_ms"] = (time.perf_counter() - start) * 1000.0
        result["thread"] = threading.current_thread().name
        return result

    @thread_safe_method
    @tool(description="Transform each item: numbers squared, strings upper-cased, "
                      "lists summed, anything else returned unchanged")
    def batch_process(self, items: list, delay_ms: int = 0) -> Dict[str, Any]:
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        start = time.perf_counter()
        results: List[Any] = []
        for item in items:
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
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
        thread = threading.current_thread().name
        with self.acquire_lock():
            self.history.append({"items_processed": len(results), "thread": thread,
                                 "execution_time": time.perf_counter() - start,
                                 "timestamp": time.time()})
        return {"results": results, "count": len(results), "thread": thread}

    @thread_safe_method
    @tool(description="CPU stress: a pure-Python loop (runs in parallel on a free-threaded "
                      "build) and the sum of 0..iterations-1")
    def stress_test(self, iterations: int = 1000, duration_ms: int = 0,
                    complexity: int = 1000) -> Dict[str, Any]:
        if duration_ms:
            return self._stress_for(duration_ms, complexity)
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

    def _stress_for(self, duration_ms: int, complexity: int) -> Dict[str, Any]:
        # Snakepit's form: rounds of `complexity` squares until duration_ms passed.
        if not 0 < duration_ms <= MAX_STRESS_MS or not 0 < complexity <= MAX_STRESS_ITERATIONS:
            raise ValueError(f"duration_ms must be in 1..{MAX_STRESS_MS} and complexity in "
                             f"1..{MAX_STRESS_ITERATIONS}")
        start = time.perf_counter()
        deadline = start + duration_ms / 1000.0
        rounds = 0
        sqrt = math.sqrt
        while time.perf_counter() < deadline:
            acc = 0.0
            for i in range(complexity):
                acc += sqrt(i)
            rounds += 1
        elapsed = time.perf_counter() - start
        self._count()
        return {"iterations": rounds, "target_duration_ms": duration_ms,
                "actual_duration_ms": int(elapsed * 1000), "complexity": complexity,
                "ops_per_second": rounds / elapsed if elapsed else 0.0,
                "thread": threading.current_thread().name}

    @thread_safe_method
    @tool(description="Statistics and model facts (Snakepit's name for get_thread_stats)")
    def get_adapter_stats(self) -> Dict[str, Any]:
        stats = self._thread_stats()
        with self.acquire_lock():
            stats["history_entries"] = len(self.history)
        stats["model"] = {"layers": [list(shape) for shape in LAYERS]}
        return stats

    @thread_safe_method
    @tool(description="Clear the calling thread's caches (its thread-local state)")
    def clear_caches(self) -> Dict[str, Any]:
        self.clear_thread_local()
        thread = threading.current_thread().name
        return {"status": "success", "message": f"Caches cleared for thread {thread}",
                "thread": thread}

    @thread_safe_method
    @tool(description="The latest batch_process calls (at most limit)")
    def get_history(self, limit: int = 10) -> Dict[str, Any]:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        with self.acquire_lock():
            entries = [dict(e) for e in list(self.history)[-limit:]] if limit else []
            total = len(self.history)
        return {"entries": entries, "total_entries": total, "returned": len(entries)}

    @thread_safe_method
    @tool(description="Request statistics of this worker process (per-thread utilization)")
    def get_thread_stats(self) -> Dict[str, Any]:
        return self._thread_stats()

    def _thread_stats(self) -> Dict[str, Any]:
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

    @thread_safe_method
    @tool(description="Remember each message of a session and say which turn this is "
                      "(try: snakepit exec --url URL --session me default chat "
                      "'{\"text\": \"hi\"}' twice)")
    def chat(self, text: str) -> Dict[str, Any]:
        ctx = current()
        state = ctx.session
        out: Dict[str, Any] = {"session": ctx.session_id,
                               "worker": os.environ.get("SNAKEPIT_WORKER_ID")}
        if state is None:
            # No session: nothing outlives the call, and the answer says how
            # to get one rather than failing.
            out.update(turn=1, history=[text],
                       note="no session: this history ends with the call; pass --session ID "
                            "(CLI) or the X-Snakepit-Session header (HTTP) to keep it")
            return out
        # Calls of one session may run at once on a thread worker: the
        # read-modify-write below must not interleave.
        with state.lock:
            history = state.setdefault("history", [])
            history.append(text)
            del history[:-CHAT_HISTORY]
            state["turns"] = state.get("turns", 0) + 1
            out.update(turn=state["turns"], history=list(history))
        return out

    @thread_safe_method
    @tool(description="Call another tool through the host and return its result (pool: "
                      "this tool's own when empty; try: snakepit exec --local hpc_pool "
                      "relay '{\"pool\": \"default\", \"tool\": \"ping\"}')")
    def relay(self, tool: str, pool: str = "", args: dict = None) -> Dict[str, Any]:
        here = os.environ.get("SNAKEPIT_POOL", "")
        target = pool or here
        result = current().call(target, tool, **(args or {}))
        return {"via": {"pool": here, "worker": os.environ.get("SNAKEPIT_WORKER_ID")},
                "called": {"pool": target, "tool": tool}, "result": result}

    @thread_safe_method
    @tool(description="Call a function the host program registered (sp_register_host_function) "
                      "and return its result (examples/callbacks.c registers 'lookup')")
    def ask_host(self, function: str, args: dict = None) -> Dict[str, Any]:
        return {"function": function, "result": current().call_host(function, **(args or {}))}
