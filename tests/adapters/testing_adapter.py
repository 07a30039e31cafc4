"""TestingAdapter: tools that exercise every path of the worker (tests only).

Import with ``tests/adapters`` on ``sys.path``; spec ``testing_adapter.TestingAdapter``.
Includes tools that misbehave on purpose: ``fail`` raises, ``exit_now`` ends the
process with ``os._exit``, ``segfault`` crashes it, ``spin`` holds the GIL. NumPy is imported only by
``numpy_work``, so the adapter also loads on a Python without NumPy.
"""

import ctypes
import gc
import os
import random
import sys
import threading
import time

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.optional import available, require


class TestingAdapter(ThreadSafeAdapter):
    """Deterministic tools for integration and unit tests."""

    __test__ = False            # not a pytest test class
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="Do nothing (per-call overhead)")
    def noop(self):
        return None

    @thread_safe_method
    @tool(description="Return value unchanged")
    def echo(self, value=None):
        return value

    @thread_safe_method
    @tool(description="Add two integers")
    def add(self, a: int, b: int) -> int:
        return a + b

    @thread_safe_method
    @tool(description="time.sleep(seconds); releases the GIL")
    def sleep(self, seconds: float):
        time.sleep(seconds)
        return {"slept": seconds, "thread": threading.current_thread().name}

    @thread_safe_method
    @tool(description="Raise ValueError(message)")
    def fail(self, message: str = "boom"):
        raise ValueError(message)

    @tool(description="Terminate the process at once with os._exit(code)")
    def exit_now(self, code: int = 3):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    @tool(description="Crash the process with a segmentation fault")
    def segfault(self):
        ctypes.string_at(0)

    @thread_safe_method
    @tool(description="Repeated np.dot of size x size float64 matrices (releases the GIL)")
    def numpy_work(self, size: int = 200, repeat: int = 10):
        np = require("numpy")
        rng = np.random.default_rng(size)
        a = rng.random((size, size))
        b = rng.random((size, size))
        checksum = 0.0
        for _ in range(repeat):
            checksum += float(np.dot(a, b).sum())
        return {"checksum": checksum, "size": size, "repeat": repeat,
                "thread": threading.current_thread().name}

    @tool(description="Minor page faults of this process so far")
    def page_faults(self):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    @thread_safe_method
    @tool(description="Pure-Python busy loop for `seconds` (holds the GIL on GIL builds)")
    def spin(self, seconds: float):
        deadline = time.perf_counter() + seconds
        loops = 0
        while time.perf_counter() < deadline:
            loops += 1
        return {"loops": loops, "thread": threading.current_thread().name}

    @thread_safe_method
    @tool(description="Pure-Python arithmetic, n rounds (no sleeping, no C calls): "
                      "runs in parallel only on a free-threaded build")
    def crunch(self, n: int):
        acc = 0
        # A local, not the constant in the loop: on a free-threaded build every
        # thread's load of a shared constant (an int above 256) touches its
        # reference count, and two threads doing so run at half speed.
        modulus = 1_000_003
        for i in range(n):
            acc = (acc * 31 + i) % modulus
        return acc

    @tool(description="gc.collect(): on a free-threaded build, a stop-the-world pause")
    def collect(self) -> int:
        return gc.collect()

    @tool(description="Whether module `name` can be imported in this worker")
    def has_module(self, name: str) -> bool:
        return available(name)

    @tool(description="Import module `name` (an extension without free-threading support "
                      "turns the GIL back on); returns whether the GIL is on afterwards")
    def import_module(self, name: str) -> bool:
        __import__(name)
        return getattr(sys, "_is_gil_enabled", lambda: True)()

    @thread_safe_method
    @tool(description="Write text to stderr and flush")
    def write_stderr(self, text: str):
        print(text, file=sys.stderr)
        sys.stderr.flush()
        return {"written": len(text)}

    @thread_safe_method
    @tool(description="Name of the thread running this call")
    def thread_name(self):
        return threading.current_thread().name

    @tool(description="Process id of the worker")
    def pid(self):
        return os.getpid()

    @tool(description="Who runs this call: pid, parent pid, SNAKEPIT_WORKER_ID and a "
                      "random.random() draw, after sleeping `delay` seconds")
    def whoami(self, delay: float = 0.0):
        time.sleep(delay)
        return {"pid": os.getpid(), "ppid": os.getppid(),
                "worker_id": os.environ.get("SNAKEPIT_WORKER_ID", ""),
                "random": random.random()}

    # ---- streaming -----------------------------------------------------

    @thread_safe_method
    @tool(description="Yield {i} for i in 0..n-1, sleeping delay seconds before each; "
                      "writes 'closed N' to marker (if given) when the generator ends",
          supports_streaming=True)
    def count(self, n: int = 3, delay: float = 0.0, marker: str = ""):
        i = 0
        try:
            while i < n:
                if delay:
                    time.sleep(delay)
                yield {"i": i}
                i += 1
        finally:
            if marker:
                with open(marker, "w") as f:
                    f.write(f"closed {i}")

    @thread_safe_method
    @tool(description="Async generator: yield i for i in 0..n-1; writes 'aclosed' to marker "
                      "(if given) in its finally block", supports_streaming=True)
    async def count_async(self, n: int = 3, delay: float = 0.0, marker: str = ""):
        import asyncio

        try:
            for i in range(n):
                if delay:
                    await asyncio.sleep(delay)
                yield i
        finally:
            if marker:
                with open(marker, "w") as f:
                    f.write("aclosed")

    @thread_safe_method
    @tool(description="Yield n chunks, then raise ValueError", supports_streaming=True)
    def stream_then_fail(self, n: int = 2):
        for i in range(n):
            yield i
        raise ValueError(f"failed after {n} chunks")

    @thread_safe_method
    @tool(description="Yield n small items as fast as possible", supports_streaming=True)
    def tight(self, n: int = 1000):
        for i in range(n):
            yield i

    @thread_safe_method
    @tool(description="Yield {i, t: time.monotonic(), pid} for i in 0..n-1, sleeping delay "
                      "seconds before each", supports_streaming=True)
    def timed(self, n: int = 3, delay: float = 0.0):
        for i in range(n):
            if delay:
                time.sleep(delay)
            yield {"i": i, "t": time.monotonic(), "pid": os.getpid()}
