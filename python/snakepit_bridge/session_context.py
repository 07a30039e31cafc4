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
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, Optional

from . import context as _context

__all__ = ["SessionContext", "CallError"]

_LIVE = object()

CallError = _context.CallError


def call_host_or_tool(name: str, args: Dict[str, Any]) -> Any:
    """The fallback rule of ``call_elixir_tool`` (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool name must be a non-empty string, got {name!r}")
    ctx = _context.current()
    if "/" in name:
        pool, _, tool = name.partition("/")
        return ctx.call(pool, tool, **args)
    try:
        return ctx.call_host(name, **args)
    except CallError as exc:
        if exc.code != "SP_ENOFUNC":   # the host has no function of that name: try a tool
            raise
    return ctx.call(os.environ.get("SNAKEPIT_POOL", ""), name, **args)


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
        return _context.current().session_id

    @property
    def session(self) -> Optional[Dict[str, Any]]:
        """The current session's dictionary kept in the worker (None outside sessions)."""
        return _context.current().session

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
