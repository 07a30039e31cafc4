"""SessionAdapter: tools that read and write the calling session's state
(``current().session``), for the session tests."""
import os
import time

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool
from snakepit_bridge.context import current


def _view(extra=None):
    ctx = current()
    state = ctx.session
    out = {"pid": os.getpid(), "session_id": ctx.session_id,
           "has_state": state is not None,
           "total": state.get("total", 0) if state is not None else None}
    if extra:
        out.update(extra)
    return out


class SessionAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="Add x to the session's running total; returns the total and the pid")
    def add(self, x: int = 1):
        state = current().session
        if state is not None:
            with state.lock:
                state["total"] = state.get("total", 0) + x
        return _view()

    @thread_safe_method
    @tool(description="The session's total and the pid, without changing anything")
    def peek(self):
        return _view()

    @thread_safe_method
    @tool(description="Add 1 to the total, then sleep `seconds`")
    def hold(self, seconds: float = 0.5):
        state = current().session
        if state is not None:
            with state.lock:
                state["total"] = state.get("total", 0) + 1
        time.sleep(seconds)
        return _view({"slept": seconds})

    @thread_safe_method
    @tool(description="Add 1 to the total n times, unlocked read then write with a pause "
                      "between, unless locked is true")
    def bump(self, n: int = 100, locked: bool = True):
        state = current().session
        for _ in range(n):
            if locked:
                with state.lock:
                    v = state.get("total", 0)
                    time.sleep(0)
                    state["total"] = v + 1
            else:
                v = state.get("total", 0)
                time.sleep(0)
                state["total"] = v + 1
        return _view()

    @thread_safe_method
    @tool(description="Yield the total after adding 1, n times", supports_streaming=True)
    def stream_add(self, n: int = 3):
        for _ in range(n):
            state = current().session
            state["total"] = state.get("total", 0) + 1
            yield _view()

    @thread_safe_method
    @tool(description="Sessions this worker holds state for")
    def held(self):
        from snakepit_bridge import context
        return {"pid": os.getpid(), "sessions": sorted(context._sessions)}
