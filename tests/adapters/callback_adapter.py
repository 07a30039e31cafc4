"""CallbackAdapter: tools that call other tools and host functions (tests only).

``relay`` makes one nested call (``current().call``), ``host`` calls a host
function (``current().call_host``); with ``catch`` they return the CallError's
fields instead of raising. ``nap`` sleeps in small steps and writes
"cancelled" or "done" to ``marker`` (if given) when it ends.
"""
import os
import time

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.context import CallCancelled, CallError, current


def _error_fields(e):
    return {"error": {"code": e.code, "category": e.category, "message": e.message,
                      "python_type": e.python_type, "traceback": e.traceback}}


def _mark(path, text):
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


class CallbackAdapter(ThreadSafeAdapter):
    __test__ = False
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="a + b")
    def add(self, a: int, b: int):
        return a + b

    @thread_safe_method
    @tool(description="Process id of the worker")
    def pid(self):
        return os.getpid()

    @thread_safe_method
    @tool(description="A string of n x's")
    def big(self, n: int):
        return "x" * n

    @thread_safe_method
    @tool(description="Raise ValueError")
    def boom(self, message: str = "boom"):
        raise ValueError(message)

    @thread_safe_method
    @tool(description="Sleep in steps of 10 ms; write the outcome to marker")
    def nap(self, seconds: float, marker: str = ""):
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(0.01)
        except CallCancelled:
            _mark(marker, "cancelled")
            raise
        _mark(marker, "done")
        return seconds

    @thread_safe_method
    @tool(description="Sleep delay seconds, then call tool of pool with args")
    def relay(self, pool: str, tool: str, args: dict = None, delay: float = 0.0,
              catch: bool = False, marker: str = ""):
        if delay:
            time.sleep(delay)
        try:
            return current().call(pool, tool, **(args or {}))
        except CallError as e:
            if catch:
                return _error_fields(e)
            raise
        except CallCancelled:
            _mark(marker, "cancelled")
            raise

    @thread_safe_method
    @tool(description="Call host function name with args")
    def host(self, name: str, args: dict = None, catch: bool = False):
        try:
            return current().call_host(name, **(args or {}))
        except CallError as e:
            if catch:
                return _error_fields(e)
            raise

    @thread_safe_method
    @tool(description="Yield 'started', then the result of a nested call",
          supports_streaming=True)
    def relay_stream(self, pool: str, tool: str, args: dict = None, marker: str = ""):
        yield "started"
        try:
            yield current().call(pool, tool, **(args or {}))
        except CallCancelled:
            _mark(marker, "cancelled")
            raise

    @thread_safe_method
    @tool(description="Call tool of pool with an argument s of n bytes; report a refusal")
    def relay_padded(self, pool: str, tool: str, n: int):
        try:
            return current().call(pool, tool, s="x" * n)
        except ValueError as e:
            return {"refused": str(e)}

    @thread_safe_method
    @tool(description="Pass an array to a nested call (refused)")
    def relay_bytes(self, pool: str, tool: str):
        try:
            current().call(pool, tool, data=b"abc")
        except TypeError as e:
            return {"refused": str(e)}
        return {"refused": None}
