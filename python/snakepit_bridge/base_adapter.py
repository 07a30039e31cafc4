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
when present: ``set_session_context(ctx)`` and ``initialize()`` after
construction, ``close()`` / ``cleanup()`` at shutdown (each once per worker;
``initialize`` and ``cleanup`` may be ``async``).

Adapters written for Snakepit keep working: ``@tool`` also accepts
``required_variables`` and sets Snakepit's ``_tool_metadata`` attribute, and
:class:`BaseAdapter` has ``session_id``, ``set_session_context``,
``call_tool`` and ``get_tools``. Tools an adapter's ``execute_tool`` reaches
through its own registry are tools too (docs/migrating-from-snakepit.md).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["BaseAdapter", "ToolMetadata", "tool", "TOOL_ATTR", "get_tool_metadata",
           "iter_tools"]

#: Name of the function attribute that marks a method as a tool.
TOOL_ATTR = "_snakepit_tool"


class ToolMetadata:
    """Snakepit's view of a tool's marker (the ``_tool_metadata`` attribute).
    A plain class: importing dataclasses would cost every worker's start."""

    __slots__ = ("description", "supports_streaming", "parameters", "required_variables")

    def __init__(self, description: str = "", supports_streaming: bool = False,
                 parameters: Optional[List[Dict[str, Any]]] = None,
                 required_variables: Optional[List[str]] = None) -> None:
        self.description = description
        self.supports_streaming = supports_streaming
        self.parameters = list(parameters or [])
        self.required_variables = list(required_variables or [])

    def __repr__(self) -> str:
        return (f"ToolMetadata(description={self.description!r}, "
                f"supports_streaming={self.supports_streaming!r})")


def _mark(fn: Any, description: str, supports_streaming: bool,
          required_variables: Any = None) -> Any:
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
    target._tool_metadata = ToolMetadata(description, bool(supports_streaming),
                                         required_variables=list(required_variables or ()))
    return fn


def tool(fn: Optional[Callable] = None, *, description: str = "",
         supports_streaming: bool = False, required_variables: Any = None) -> Any:
    """Mark a method as a tool callable from outside the worker.

    Usable bare (``@tool``), with keywords (``@tool(description="...")``) or with
    the description as the only positional argument (``@tool("...")``). An empty
    description falls back to the first paragraph of the docstring.
    ``required_variables`` (Snakepit's session variables) is recorded in
    ``_tool_metadata`` only: there are no session variables to require here.
    """
    if isinstance(fn, str):  # @tool("description")
        desc = fn
        return lambda f: _mark(f, desc, supports_streaming, required_variables)
    if fn is None:
        return lambda f: _mark(f, description, supports_streaming, required_variables)
    return _mark(fn, description, supports_streaming, required_variables)


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

    # Set by set_session_context(); class-level so a subclass that skips
    # super().__init__() still has them.
    session_context: Any = None
    _session_context: Any = None

    def __init__(self) -> None:
        super().__init__()

    @classmethod
    def list_tools(cls) -> Dict[str, Dict[str, Any]]:
        """Return ``{tool_name: metadata}`` for this class."""
        return {name: dict(meta) for name, _fn, meta in iter_tools(cls)}

    # -- Snakepit's adapter interface ---------------------------------------

    def set_session_context(self, session_context: Any) -> None:
        """Keep ``session_context`` as ``self.session_context``.

        The worker calls this once, before ``initialize()``, with a context
        that follows the call running on the calling thread
        (:class:`snakepit_bridge.session_context.SessionContext`).
        """
        self._session_context = session_context
        self.session_context = session_context

    @property
    def session_id(self) -> Optional[str]:
        """The session of the call running on this thread (None outside sessions)."""
        ctx = self.session_context or self._session_context
        if ctx is None:
            from .session_context import SessionContext
            ctx = SessionContext()
        return ctx.session_id

    def call_tool(self, tool_name: str, **kwargs: Any) -> Any:
        """Call this adapter's method ``tool_name`` (what an ``execute_tool``
        dispatcher uses); AttributeError / TypeError when there is none."""
        method = getattr(self, tool_name, None)
        if method is None:
            raise AttributeError(f"Tool '{tool_name}' not found in {type(self).__name__}")
        if not callable(method):
            raise TypeError(f"'{tool_name}' is not a callable tool")
        return method(**kwargs)

    def get_tools(self) -> List[Dict[str, Any]]:
        """Manifest entries (name, description, supports_streaming) of the
        ``@tool`` methods, sorted by name."""
        return [{"name": name, "description": meta.get("description", ""),
                 "supports_streaming": bool(meta.get("supports_streaming"))}
                for name, _fn, meta in iter_tools(type(self))]

    def register_with_session(self, session_id: str, stub: Any = None) -> List[str]:
        """Names of the tools (the worker's manifest already registers them)."""
        return [t["name"] for t in self.get_tools()]
