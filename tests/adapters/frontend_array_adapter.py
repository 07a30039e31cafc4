"""FrontendArrayAdapter: tools that take and return NumPy arrays, for the tests
of the CLI's `exec --array/--out` and the HTTP multipart API (tests only).

Spec ``frontend_array_adapter.FrontendArrayAdapter`` with ``tests/adapters`` on
``sys.path``. Array arguments arrive as read-only numpy.ndarray views.
"""

import hashlib

import numpy as np

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool


class FrontendArrayAdapter(ThreadSafeAdapter):
    __test__ = False
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="Return the array unchanged")
    def echo(self, a):
        return a

    @thread_safe_method
    @tool(description="Return a * 2")
    def double(self, a):
        return a * 2

    @thread_safe_method
    @tool(description="Arrays at nested places of the result")
    def nested(self, a):
        return {"c": a, "items": [a, b"raw"], "n": 1}

    @thread_safe_method
    @tool(description="Arrays only (no bytes) at nested places of the result")
    def nested_arrays(self, a):
        return {"c": a, "items": [a, a * 2], "n": 1}

    @thread_safe_method
    @tool(description="Two arrays whose paths map to the same file name (a.b and a/b)")
    def collide(self, a):
        return {"a.b": a, "a": {"b": a * 2}}

    @thread_safe_method
    @tool(description="An array among values JSON must keep exactly")
    def mixed(self, a):
        return {"a": a, "big": 2 ** 70, "x": 0.1, "s": '{"$array": 0} \\ "q"', "d": {"$arrayx": 0}}

    @thread_safe_method
    @tool(description="What arrived: dtype, shape, SHA-256 of the C-ordered bytes")
    def digest(self, a, label: str = ""):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"a is {type(a).__name__}, not numpy.ndarray")
        return {"dtype": str(a.dtype), "shape": list(a.shape), "label": label,
                "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}

    @thread_safe_method
    @tool(description="a + b * scale")
    def axpy(self, a, b, scale: float = 1.0):
        return a + b * scale

    @thread_safe_method
    @tool(description="The arrays given, under their argument names")
    def several(self, a, b=None, c=None, d=None, e=None, f=None, g=None, h=None):
        given = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g, "h": h}
        return {k: v for k, v in given.items() if v is not None}
