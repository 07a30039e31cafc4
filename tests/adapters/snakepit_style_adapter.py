"""Adapters written the way Snakepit's are, for the compatibility tests.

* RegistryAdapter: handler groups whose ``get_tools()`` return ``Tool``
  wrappers, one ``execute_tool(tool_name, arguments, context)`` dispatching
  through the merged registry, ``@tool`` methods next to it, chunk-object
  streaming, bytes arguments, results that need graceful conversion, and an
  ``if tool_name == ...`` tool declared in ``__dispatch_tools__``.
* AsyncLifecycleAdapter: ``async`` initialize / cleanup / execute_tool; each
  lifecycle step appends a line to the file named by LIFECYCLE_FILE.
* FailingInitAdapter / FailingAsyncInitAdapter: initialize() raises.
"""

import asyncio
import datetime
import hashlib
import os
import time
from typing import Any, Dict

from snakepit_bridge import SessionContext, get_logger  # noqa: F401 - Snakepit's imports
from snakepit_bridge.base_adapter import BaseAdapter, tool

logger = get_logger(__name__)


class Tool:
    def __init__(self, func):
        self.func = func
        self.name = func.__name__

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)


class Chunk:
    def __init__(self, data, is_final=False):
        self.data = data
        self.is_final = is_final


class Point:
    """Converts itself: to_dict()."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def to_dict(self):
        return {"x": self.x, "y": self.y}


class Opaque:
    """No conversion at all: becomes a marker."""


class MathHandler:
    def get_tools(self) -> Dict[str, Tool]:
        return {"add": Tool(self.add), "fail": Tool(self.fail)}

    def add(self, ctx, a: int, b: int = 1) -> int:
        """Add two integers."""
        return a + b

    def fail(self, ctx, message: str = "boom"):
        """Raise ValueError(message)."""
        raise ValueError(message)


class DataHandler:
    def get_tools(self) -> Dict[str, Tool]:
        return {"countdown": Tool(self.countdown), "digest": Tool(self.digest),
                "odd_result": Tool(self.odd_result), "bytes_stream": Tool(self.bytes_stream)}

    def countdown(self, ctx, start: int = 3, delay: float = 0.0):
        """Stream start..1 as chunk objects, the last one final."""
        for n in range(start, 0, -1):
            yield Chunk({"n": n}, is_final=(n == 1))
            if delay:
                time.sleep(delay)

    def bytes_stream(self, ctx):
        """One chunk whose data is bytes."""
        yield Chunk(b"\x00\x01\xff", is_final=True)

    def digest(self, ctx, data: bytes) -> Dict[str, Any]:
        """SHA-256 of binary data."""
        return {"type": type(data).__name__, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}

    def odd_result(self, ctx):
        """A result Snakepit converts gracefully."""
        return {"when": datetime.date(2024, 5, 17), "point": Point(1, 2), "opaque": Opaque()}


class RegistryAdapter(BaseAdapter):
    __dispatch_tools__ = ["shout"]

    def __init__(self):
        super().__init__()
        self.handlers = {"math": MathHandler(), "data": DataHandler()}
        self._registry = {}
        for handler in self.handlers.values():
            self._registry.update(handler.get_tools())
        self.settings = {"mode": "fast", "limit": 3}      # a dict, but no registry
        self.session_context = None
        self.dispatched = 0

    def set_session_context(self, session_context):
        self.session_context = session_context

    def execute_tool(self, tool_name: str, arguments: Dict[str, Any], context) -> Any:
        self.dispatched += 1
        if tool_name == "shout":
            return str(arguments.get("text", "")).upper() + "!"
        if tool_name in self._registry:
            return self._registry[tool_name].func(context, **arguments)
        return self.call_tool(tool_name, **arguments)

    @tool(description="How this adapter was set up")
    def describe(self) -> Dict[str, Any]:
        return {"context_type": type(self.session_context).__name__,
                "live": getattr(self.session_context, "live", None),
                "dispatched": self.dispatched, "pid": os.getpid()}

    @tool(description="Binary length through a @tool method")
    def blob_size(self, blob: bytes) -> Dict[str, Any]:
        return {"type": type(blob).__name__, "size": len(blob)}

    def helper(self):
        """Public but not a tool: never callable from outside."""
        return "secret"


def _record(step: str) -> None:
    path = os.environ.get("LIFECYCLE_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{step} {os.getpid()}\n")


class AsyncLifecycleAdapter:
    """Not derived from BaseAdapter, like Snakepit's TemplateAdapter."""

    def __init__(self):
        self.initialized = False
        self.context_set = 0
        self._tools = {"state": Tool(self.state), "wait": Tool(self.wait)}

    def set_session_context(self, session_context):
        self.context_set += 1
        _record("set_session_context")

    async def initialize(self):
        await asyncio.sleep(0.01)
        self.initialized = True
        _record("initialize")

    async def cleanup(self):
        await asyncio.sleep(0.01)
        _record("cleanup")

    async def execute_tool(self, tool_name, arguments, context):
        await asyncio.sleep(0)
        return self._tools[tool_name].func(context, **arguments)

    def state(self, ctx):
        """Lifecycle state seen by a call."""
        return {"initialized": self.initialized, "context_set": self.context_set,
                "pid": os.getpid()}

    def wait(self, ctx, seconds: float = 0.1):
        """Sleep, so a call can be in flight while the pool drains."""
        time.sleep(seconds)
        return {"slept": seconds}


class FailingInitAdapter(BaseAdapter):
    def initialize(self):
        raise RuntimeError("model file missing: /nonexistent/model.bin")

    def execute_tool(self, tool_name, arguments, context):
        return None

    @tool(description="Never reached")
    def ping(self):
        return "pong"


class FailingAsyncInitAdapter(FailingInitAdapter):
    async def initialize(self):
        await asyncio.sleep(0)
        raise RuntimeError("async setup failed: database unreachable")
