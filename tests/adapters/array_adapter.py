"""ArrayAdapter: tools that take and return arrays (tests of shared-memory arrays).

Spec ``array_adapter.ArrayAdapter`` with ``tests/adapters`` on ``sys.path``.
"""

import sys

import numpy as np

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.context import current

try:
    import _snakepit_shm
except ImportError:             # outside a worker
    _snakepit_shm = None


def _region_offset(a, rng):
    """Offset of a's data inside the region (address, size), or None."""
    if rng is None:
        return None
    addr = a.__array_interface__["data"][0]
    base, size = rng
    return addr - base if base <= addr < base + size else None


class ArrayAdapter(ThreadSafeAdapter):
    __test__ = False
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="Do nothing (per-call overhead without arrays)")
    def noop(self):
        return None

    @thread_safe_method
    @tool(description="Return the array unchanged")
    def echo(self, a):
        return a

    @thread_safe_method
    @tool(description="a * 2 (NumPy allocates the result)")
    def double(self, a):
        return a * 2

    @thread_safe_method
    @tool(description="a * 2 into an output array allocated in shared memory")
    def double_into(self, a):
        out = current().output_array(a.shape, a.dtype)
        np.multiply(a, 2, out=out)
        return out

    @thread_safe_method
    @tool(description="Arrays in a nested result")
    def nested(self, a):
        return {"c": a, "items": [a[:1], b"raw", bytearray(b"xy")], "n": 1}

    @thread_safe_method
    @tool(description="What the tool sees of its array argument")
    def info(self, a):
        ins = _snakepit_shm.in_range() if _snakepit_shm else None
        return {"type": type(a).__name__, "dtype": str(a.dtype), "shape": list(a.shape),
                "writeable": bool(a.flags.writeable), "in_offset": _region_offset(a, ins),
                "owns_data": bool(a.flags.owndata), "sum": float(np.sum(a.real))}

    @thread_safe_method
    @tool(description="Sum through DLPack (np.from_dlpack), after writing into the array")
    def dlpack(self, a):
        a[0] = 0                        # its own copy: the caller's data is not changed
        view = np.from_dlpack(a)
        return {"sum": float(view.sum()), "shares_memory": bool(np.shares_memory(view, a))}

    @thread_safe_method
    @tool(description="Sum of every array argument plus a JSON scale")
    def combine(self, scale: float = 1.0, **arrays):
        return {k: float(np.sum(v)) * scale for k, v in sorted(arrays.items())}

    @thread_safe_method
    @tool(description="An object array (cannot be shared)")
    def objects(self):
        return {"bad": np.array([1, "x"], dtype=object)}

    @thread_safe_method
    @tool(description="n float64 ones")
    def ones(self, n: int):
        return np.ones(n)

    @thread_safe_method
    @tool(description="Sleep, then return the array")
    def slow_echo(self, a, seconds: float = 1.0):
        import time
        time.sleep(seconds)
        return a

    @thread_safe_method
    @tool(description="Exit the worker at once")
    def die(self, a=None):
        import os
        os._exit(9)
