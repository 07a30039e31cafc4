"""``SessionContext``: what Snakepit adapters receive as their session context.

In Snakepit an adapter gets a ``SessionContext`` holding the request's
session id and a gRPC stub to call back into Elixir. Here the same object is
a view of the call running on the calling thread
(:func:`snakepit_bridge.context.current`):

* ``session_id`` is the session the call belongs to (None outside sessions),
  ``session`` that session's dictionary kept in the worker;
* ``call_elixir_tool(name, **args)`` calls back into the host: a function the
  C host registered under ``name`` if there is one, else the tool ``name`` of
  this worker's own pool (``"POOL/TOOL"`` names another pool's tool). The
  result is the decoded JSON; a failure raises :class:`CallError`.

The worker hands every adapter that defines ``set_session_context()`` one such
live context before ``initialize()``, and passes it as the ``context``
argument of ``execute_tool``. Because it follows the calling thread, one
instance serves every call, also in the thread profile.

``SessionContext(stub, "id")`` with an explicit session id (in an adapter's
own tests, say) keeps that id instead; its callbacks still go through the
call running on the thread.

Sessions and host callbacks come from the worker's call context. A build
without them raises :class:`SessionsUnavailable` (an ``AttributeError``, so
``hasattr(ctx, "session_id")`` is False) or :class:`CallbacksUnavailable`
with what is missing.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, Optional

from . import context as _context

__all__ = ["SessionContext", "SessionsUnavailable", "CallbacksUnavailable", "CallError"]

_LIVE = object()


class SessionsUnavailable(AttributeError):
    """This build's call context has no sessions."""


class CallbacksUnavailable(RuntimeError):
    """This build's call context cannot call back into the host."""


def _call_error_class() -> Any:
    return getattr(_context, "CallError", None)


class CallError(RuntimeError):
    """Stands for ``snakepit_bridge.context.CallError`` where it does not exist."""


if _call_error_class() is not None:     # the worker's own class, so one except clause fits both
    CallError = _call_error_class()     # type: ignore[misc]  # noqa: F811


def _live_attr(name: str, what: str) -> Any:
    ctx = _context.current()
    try:
        return getattr(ctx, name)
    except AttributeError:
        raise SessionsUnavailable(
            f"{what} needs sessions, and this snakepit build's call context has no "
            f"'{name}' (snakepit_bridge.context.current().{name})") from None


def _callback(name: str) -> Any:
    fn = getattr(_context.current(), name, None)
    if not callable(fn):
        raise CallbacksUnavailable(
            f"SessionContext.call_elixir_tool needs host callbacks, and this snakepit build's "
            f"call context has no {name}() (snakepit_bridge.context.current().{name})")
    return fn


#: Error codes (or words of the message) by which the host says it has no
#: function of the requested name; then the call falls back to a tool.
_UNKNOWN_FUNCTION = ("unknown_function", "unknown host function", "no host function",
                     "not registered", "unknown_host_function")


def _is_unknown_function(exc: BaseException) -> bool:
    for attr in ("code", "category", "kind"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value.lower() in _UNKNOWN_FUNCTION:
            return True
    text = str(exc).lower()
    return any(marker in text for marker in _UNKNOWN_FUNCTION)


def call_host_or_tool(name: str, args: Dict[str, Any]) -> Any:
    """The fallback rule of ``call_elixir_tool`` (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool name must be a non-empty string, got {name!r}")
    if "/" in name:
        pool, _, tool = name.partition("/")
        return _callback("call")(pool, tool, **args)
    try:
        return _callback("call_host")(name, **args)
    except CallbacksUnavailable:
        raise
    except Exception as exc:    # noqa: BLE001 - CallError, whatever class the build has
        if not _is_unknown_function(exc):
            raise
    pool = os.environ.get("SNAKEPIT_POOL", "")
    return _callback("call")(pool, name, **args)


class _AnyName(Dict[str, Any]):
    """``elixir_tools``: the host's functions cannot be listed beforehand, so
    every name counts as present; calling one the host lacks raises."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(key)

    def __getitem__(self, key: str) -> Dict[str, Any]:
        if key not in self:
            raise KeyError(key)
        return {"name": key, "description": "", "parameters": {}}

    def __iter__(self) -> Iterator[str]:
        return iter(())


class SessionContext:
    """The session side of a call (see the module docstring)."""

    def __init__(self, stub: Any = None, session_id: Any = _LIVE,
                 request_metadata: Optional[Dict[str, Any]] = None) -> None:
        self.stub = stub            # no gRPC here; kept for code that reads it
        self._session_id = session_id
        self.request_metadata = dict(request_metadata or {})
        self.elixir_tools = _AnyName()

    @property
    def live(self) -> bool:
        """True when the session follows the call running on the thread."""
        return self._session_id is _LIVE

    @property
    def session_id(self) -> Optional[str]:
        if self._session_id is not _LIVE:
            return self._session_id
        return _live_attr("session_id", "SessionContext.session_id")

    @property
    def session(self) -> Optional[Dict[str, Any]]:
        """The current session's dictionary kept in the worker (None outside sessions)."""
        return _live_attr("session", "SessionContext.session")

    def call_elixir_tool(self, tool_name: str, **kwargs: Any) -> Any:
        """Call a host function (or, failing that, a tool) named ``tool_name``."""
        return call_host_or_tool(tool_name, kwargs)

    def cleanup(self) -> None:
        """Nothing to do: sessions end by the host's rules (kept for Snakepit code)."""

    def __enter__(self) -> "SessionContext":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.cleanup()
        return False

    def __repr__(self) -> str:
        if self.live:
            return "SessionContext(live)"
        return f"SessionContext(session_id={self._session_id!r})"
