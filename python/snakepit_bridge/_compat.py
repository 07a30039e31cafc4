"""How adapters written for Snakepit run on this worker. Private.

Snakepit calls every tool through the adapter's ``execute_tool(tool_name,
arguments, context)``, builds the adapter per request with
``set_session_context()`` / ``initialize()`` / ``cleanup()`` around it, streams
chunk objects (``.data``, ``.is_final``) and converts odd results gracefully.
This module maps that onto the worker's model (one instance per worker,
``@tool`` methods), for :mod:`snakepit_bridge._host`:

* :func:`prepare` gives the adapter its live
  :class:`~snakepit_bridge.session_context.SessionContext` (before
  ``initialize()``); :func:`settle` runs what a sync-or-async lifecycle
  method returned;
* :func:`extend_tools` adds the tools an ``execute_tool`` reaches through the
  adapter's own registry (see :func:`registry_tools`) next to the ``@tool``
  ones, and turns on Snakepit's result conversion for such adapters;
* :func:`json_fallback` is the encoder's last resort: chunk objects become
  their data, and for Snakepit adapters other objects convert gracefully
  (:mod:`snakepit_bridge.serialization`).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import serialization as _serialization
from .session_context import SessionContext

__all__ = ["prepare", "settle", "extend_tools", "registry_tools", "json_fallback",
           "is_snakepit_adapter"]

#: Names a registry callable's first parameter has when it is the context
#: (Snakepit handlers are ``def tool(self, ctx, **args)``).
CONTEXT_PARAMS = frozenset({"ctx", "context", "session_context", "session"})

#: Set by extend_tools for a Snakepit adapter; one adapter per worker process.
graceful = False

_live_context: Optional[SessionContext] = None


def live_context() -> SessionContext:
    """The worker's one live SessionContext (follows the calling thread)."""
    global _live_context
    if _live_context is None:
        _live_context = SessionContext()
    return _live_context


def is_snakepit_adapter(adapter: Any) -> bool:
    """An adapter with Snakepit's entry point, ``execute_tool``."""
    return callable(getattr(adapter, "execute_tool", None))


def settle(result: Any) -> Any:
    """The value of a sync-or-async call's result: awaitables are run to the end."""
    if inspect.isawaitable(result):
        import asyncio  # only adapters with async methods pay its import

        async def wait() -> Any:
            return await result

        return asyncio.run(wait())
    return result


def prepare(adapter: Any) -> None:
    """Before ``initialize()``: hand a ``set_session_context`` adapter the live context."""
    setter = getattr(adapter, "set_session_context", None)
    if callable(setter):
        settle(setter(live_context()))


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

_MISSING = object()


def chunk_data(obj: Any) -> Any:
    """The payload of a Snakepit chunk object (``.data`` and ``.is_final``), or
    _MISSING. Bytes payloads become lists of byte values: a stream carries JSON."""
    if not hasattr(obj, "is_final"):
        return _MISSING
    data = getattr(obj, "data", _MISSING)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return list(bytes(data))
    return data


def json_fallback(obj: Any) -> Any:
    """The encoder's last resort for ``obj``; raises TypeError when there is none."""
    data = chunk_data(obj)
    if data is not _MISSING:
        return data
    if graceful:
        return _serialization.graceful_default(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# --------------------------------------------------------------------------
# Tools reached through execute_tool
# --------------------------------------------------------------------------

def _registry_target(value: Any) -> Optional[Callable]:
    """The function behind a registry entry: a function or bound method, or an
    object carrying one as ``.func`` (Snakepit's ``Tool`` wrapper)."""
    if inspect.isfunction(value) or inspect.ismethod(value) or isinstance(value, functools.partial):
        return value
    func = getattr(value, "func", None)
    if inspect.isfunction(func) or inspect.ismethod(func):
        return func
    return None


def _is_registry(value: Any) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    return all(isinstance(k, str) and k and _registry_target(v) is not None
               for k, v in value.items())


def registry_tools(adapter: Any) -> Dict[str, Callable]:
    """``{name: function}`` of every tool registry the adapter holds.

    A registry is a non-empty dict, an attribute of the instance or of one of
    its classes, whose keys are names and whose values are all functions
    (or objects with a ``func``). ``__dispatch_tools__`` on the class, a list
    of names, declares tools an ``execute_tool`` handles by itself (an
    ``if tool_name == ...`` chain): they take any arguments.
    """
    found: Dict[str, Callable] = {}
    holders: List[Dict[str, Any]] = [getattr(adapter, "__dict__", {})]
    holders += [vars(k) for k in type(adapter).__mro__ if k is not object]
    for holder in holders:
        for attr, value in list(holder.items()):
            if attr.startswith("__") or not _is_registry(value):
                continue
            for name, entry in value.items():
                found.setdefault(name, _registry_target(entry))
    declared = getattr(type(adapter), "__dispatch_tools__", ())
    if isinstance(declared, str):
        declared = (declared,)
    for name in declared or ():
        if isinstance(name, str) and name:
            found.setdefault(name, _any_arguments)
    return found


def _any_arguments(**kwargs: Any) -> Any:
    """Takes whatever arguments the adapter's execute_tool expects."""


def _description(fn: Callable) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def _parameters(fn: Callable) -> List[inspect.Parameter]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]
    if params and params[0].name in CONTEXT_PARAMS and \
            params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return [p for p in params if p.kind is not p.VAR_POSITIONAL]


def _binary_params(params: List[inspect.Parameter]) -> Tuple[str, ...]:
    return tuple(p.name for p in params if p.annotation in (bytes, "bytes"))


def _as_bytes(value: Any) -> Any:
    """A binary argument as Snakepit hands it over: bytes. Arrays (shared
    memory views) and lists of byte values are copied into bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    tobytes = getattr(value, "tobytes", None)
    if callable(tobytes):
        return tobytes()
    if isinstance(value, list) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _dispatcher(adapter: Any, name: str, target: Callable) -> Tuple[Callable, Dict[str, Any]]:
    """A function the worker calls like a ``@tool`` method, which calls
    ``adapter.execute_tool(name, arguments, live_context)``."""
    params = _parameters(target)
    binary = _binary_params(params)
    execute = adapter.execute_tool
    ctx = live_context()

    def arguments(kwargs: Dict[str, Any]) -> Dict[str, Any]:
        for key in binary:
            if key in kwargs:
                kwargs[key] = _as_bytes(kwargs[key])
        return kwargs

    if inspect.iscoroutinefunction(inspect.unwrap(execute)):
        async def call(**kwargs: Any) -> Any:
            return await execute(name, arguments(kwargs), ctx)
    else:
        def call(**kwargs: Any) -> Any:
            return settle(execute(name, arguments(kwargs), ctx))

    call.__name__ = name
    call.__qualname__ = f"{type(adapter).__qualname__}.execute_tool[{name}]"
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    streaming = inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)
    meta = {"name": name, "description": _description(target),
            "supports_streaming": streaming}
    return call, meta


def _with_bytes(fn: Callable, names: Tuple[str, ...]) -> Callable:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        for key in names:
            if key in kwargs:
                kwargs[key] = _as_bytes(kwargs[key])
        return fn(*args, **kwargs)
    return call


def extend_tools(adapter: Any, tools: Dict[str, Any], make_tool: Callable) -> None:
    """For an adapter with ``execute_tool``: add its registry tools to ``tools``
    (``@tool`` methods keep their names), give ``bytes`` parameters bytes, and
    turn on graceful result conversion. ``make_tool(name, fn, meta)`` builds a
    tool entry. Other adapters are left as they are."""
    global graceful
    graceful = is_snakepit_adapter(adapter)
    if not graceful:
        return
    for name, entry in list(tools.items()):
        binary = _binary_params(_parameters(entry.fn))
        if binary:
            tools[name] = make_tool(name, _with_bytes(entry.fn, binary),
                                    dict(entry.manifest, name=name))
    for name, target in registry_tools(adapter).items():
        if name in tools:
            continue
        fn, meta = _dispatcher(adapter, name, target)
        tools[name] = make_tool(name, fn, meta)
