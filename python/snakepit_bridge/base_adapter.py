"""Adapter base class and the ``@tool`` marker.

An adapter is a plain Python class whose *tools* (methods marked with ``@tool``)
can be called from outside the process by the snakepit worker. Nothing else on
the adapter is reachable: helpers, attributes and unmarked methods stay private.

    from snakepit_bridge.base_adapter import BaseAdapter, tool

    class MyAdapter(BaseAdapter):
        @tool(description="Add two integers")
        def add(self, a: int, b: int) -> int:
            return a + b

The marker is a function attribute (``_snakepit_tool``), so it survives wrappers
built with ``functools.wraps`` (which copies the wrapped function's ``__dict__``),
whichever order the decorators are stacked in. Lifecycle hooks the worker calls
when present: ``initialize()`` after construction, ``close()`` / ``cleanup()`` at
shutdown.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

__all__ = ["BaseAdapter", "tool", "TOOL_ATTR", "get_tool_metadata", "iter_tools"]

#: Name of the function attribute that marks a method as a tool.
TOOL_ATTR = "_snakepit_tool"


def _mark(fn: Any, description: str, supports_streaming: bool) -> Any:
    target = fn.__func__ if isinstance(fn, (staticmethod, classmethod)) else fn
    if not callable(target):
        raise TypeError(f"@tool can only decorate functions, got {type(fn).__name__}")
    if not isinstance(description, str):
        raise TypeError("tool description must be a str")
    if not description:
        # Fall back to the first paragraph of the docstring.
        doc = inspect.getdoc(target) or ""
        description = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    setattr(target, TOOL_ATTR, {
        "name": getattr(target, "__name__", None),
        "description": description,
        "supports_streaming": bool(supports_streaming),
    })
    return fn


def tool(fn: Optional[Callable] = None, *, description: str = "",
         supports_streaming: bool = False) -> Any:
    """Mark a method as a tool callable from outside the worker.

    Usable bare (``@tool``), with keywords (``@tool(description="...")``) or with
    the description as the only positional argument (``@tool("...")``). An empty
    description falls back to the first paragraph of the docstring.
    """
    if isinstance(fn, str):  # @tool("description")
        desc = fn
        return lambda f: _mark(f, desc, supports_streaming)
    if fn is None:
        return lambda f: _mark(f, description, supports_streaming)
    return _mark(fn, description, supports_streaming)


def get_tool_metadata(obj: Any) -> Optional[Dict[str, Any]]:
    """Return the tool metadata of a function/method, or None if it is no tool.

    Follows ``__wrapped__`` chains, so a wrapper that forgot to copy ``__dict__``
    still counts as a tool when the function it wraps is one.
    """
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    seen = 0
    while obj is not None and seen < 32:
        meta = getattr(obj, TOOL_ATTR, None) if callable(obj) else None
        if isinstance(meta, dict):
            return meta
        obj = getattr(obj, "__wrapped__", None)
        seen += 1
    return None


def iter_tools(adapter: Any) -> Iterator[Tuple[str, Callable, Dict[str, Any]]]:
    """Yield ``(name, bound_callable, metadata)`` for every tool of ``adapter``.

    Looks through the class MRO without triggering descriptors such as
    properties. ``adapter`` may be an instance or a class (then the callables
    are the plain functions). Sorted by name.
    """
    cls = adapter if isinstance(adapter, type) else type(adapter)
    for name in sorted(dir(cls)):
        try:
            raw = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        meta = get_tool_metadata(raw)
        if meta is None:
            continue
        yield name, getattr(adapter, name), meta


class BaseAdapter:
    """Base class for adapters run by the snakepit worker.

    ``__thread_safe__`` declares whether one instance may run tools on several
    threads at once. It is False here; thread-profile adapters derive from
    :class:`snakepit_bridge.base_adapter_threaded.ThreadSafeAdapter` and set it
    to True.
    """

    __thread_safe__ = False

    def __init__(self) -> None:
        super().__init__()

    @classmethod
    def list_tools(cls) -> Dict[str, Dict[str, Any]]:
        """Return ``{tool_name: metadata}`` for this class."""
        return {name: dict(meta) for name, _fn, meta in iter_tools(cls)}
