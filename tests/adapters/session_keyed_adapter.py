"""A Snakepit-style adapter keeping state per session (``ctx.session_id``) and
calling back into the host with ``call_elixir_tool`` (tests/python/test_compat_host.py)."""

from typing import Any, Dict

from snakepit_bridge import SessionContext  # noqa: F401 - Snakepit's import
from snakepit_bridge.base_adapter import BaseAdapter, tool


class Tool:
    def __init__(self, func):
        self.func = func


class SessionKeyedAdapter(BaseAdapter):
    _counts: Dict[Any, int] = {}

    def __init__(self):
        super().__init__()
        self._tools = {"bump": Tool(self.bump), "relay": Tool(self.relay),
                       "double": Tool(self.double)}

    def execute_tool(self, tool_name, arguments, context):
        return self._tools[tool_name].func(context, **arguments)

    def bump(self, ctx):
        """Count calls per session, in the adapter and in the session's dict."""
        sid = ctx.session_id
        self._counts[sid] = self._counts.get(sid, 0) + 1
        store = ctx.session
        store["n"] = store.get("n", 0) + 1
        return {"session_id": sid, "count": self._counts[sid], "session_count": store["n"]}

    def relay(self, ctx, name: str, x: int):
        """call_elixir_tool(name, x=x)."""
        return {"result": ctx.call_elixir_tool(name, x=x)}

    def double(self, ctx, x: int):
        return 2 * x

    @tool(description="Session as the adapter and its context see it")
    def whoami(self):
        return {"session_id": self.session_context.session_id,
                "adapter_session_id": self.session_id}
