"""Snakepit's session and callback names mapped onto the worker's call
context: ``SessionContext.session_id`` / ``.session`` onto
``current().session_id`` / ``.session``, ``call_elixir_tool`` onto
``current().call_host`` (falling back to ``current().call`` of a tool),
through real workers."""

import json
import os
import pathlib
import subprocess

from snakepit_bridge import _host
from snakepit_bridge import context as _context
from snakepit_bridge.session_context import SessionContext

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SNAKEPIT_BIN") or str(REPO / "build" / "snakepit")
ADAPTERS = str(REPO / "tests" / "adapters")
SPEC = "session_keyed_adapter.SessionKeyedAdapter"


def test_call_context_has_sessions_and_callbacks():
    ctx = _context.current()
    for name in ("session_id", "session", "call", "call_host"):
        assert hasattr(ctx, name), f"snakepit_bridge.context.current() has no '{name}'"
    assert hasattr(_context, "CallError")


def test_outside_a_session_the_session_id_is_none():
    h = _host.load(SPEC, [], "w1", "p", "process", 1)
    try:
        status, payload = h.invoke("whoami", "{}")[:2]
    finally:
        h.shutdown()
    assert status == 0, payload
    assert json.loads(payload) == {"session_id": None, "adapter_session_id": None}
    assert SessionContext().session_id is None


def _cli(*args, env=None):
    run_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    run_env.pop("SNAKEPIT_URL", None)
    return subprocess.run([BIN, "-q", "--adapter", SPEC, "--python-path", ADAPTERS,
                           "--workers", "2", *args], capture_output=True, text=True,
                          timeout=60, env=run_env)


def test_session_keyed_state_is_kept_per_session():
    out = _cli("exec", "--session", "s1", "default", "bump", "{}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"session_id": "s1", "count": 1, "session_count": 1}


def test_call_elixir_tool_falls_back_to_a_tool_of_the_own_pool():
    out = _cli("exec", "default", "relay", '{"name": "double", "x": 21}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"result": 42}


def test_call_elixir_tool_reaches_a_named_pool():
    out = _cli("exec", "default", "relay", '{"name": "default/double", "x": 5}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"result": 10}


def test_call_elixir_tool_failure_raises_call_error():
    out = _cli("exec", "default", "relay", '{"name": "no_such_tool", "x": 1}')
    assert out.returncode != 0
    assert "no_such_tool" in out.stderr
