"""Per-call context for tools: cooperative cancellation, and output arrays
allocated in shared memory (``current().output_array(shape, dtype)``).

When a call times out or is cancelled, snakepit raises ``CallCancelled`` inside
the thread running it (this lands at the next Python bytecode; code stuck in C
does not see it until it returns). A tool that wants to stop cleanly between
steps can also poll the flag::

    from snakepit_bridge.context import current

    @tool(description="Long job")
    def crunch(self, n: int):
        ctx = current()
        for i in range(n):
            ctx.check()          # raises CallCancelled once the call is cancelled
            step(i)

``CallCancelled`` derives from ``BaseException`` so that a broad
``except Exception`` in a tool does not swallow it.
"""
import threading

__all__ = ["CallCancelled", "CallContext", "CallError", "current"]


class CallCancelled(BaseException):
    """The call was cancelled or its deadline passed."""


class CallContext:
    """State of the call running on one execution thread."""

    __slots__ = ("tool", "cancelled")

    def __init__(self):
        self.tool = None
        self.cancelled = False

    def check(self):
        """Raise CallCancelled if the current call has been cancelled."""
        if self.cancelled:
            raise CallCancelled(f"call to tool '{self.tool}' was cancelled")

    def output_array(self, shape, dtype="float64"):
        """A writable NumPy array in this worker's shared output memory.

        Fill it in place and return it (anywhere in the result): it reaches
        the caller with no copy. Blocks the call does not return are freed
        when it ends.
        """
        from . import _arrays
        return _arrays.output_array(shape, dtype)

    def call(self, pool, tool, /, **args):
        """Call tool of pool (this tool's own pool too) and return its result.

        See "Calls back into the host" below.
        """
        return _call_out(_KIND_TOOL, pool, tool, args)

    def call_host(self, name, /, **args):
        """Call the function the host application registered as name
        (sp_register_host_function) and return its result."""
        return _call_out(_KIND_FUNCTION, "", name, args)


_local = threading.local()


def current():
    """The context of the call running on this thread (a fresh one outside calls).

    The worker sets ``cancelled`` when the call is cancelled and clears it again
    before the thread's next call; both happen from C, with no Python code
    running in between.
    """
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = CallContext()
        _local.ctx = ctx
    return ctx


def _begin(tool):
    try:
        _local.ctx.tool = tool
    except AttributeError:
        current().tool = tool


# ---- sessions ---------------------------------------------------------------
#
# A call made in a session (the caller's session id) sees that session's
# state: ``current().session`` is a dict this worker keeps for the session and
# shares between its calls; ``current().session_id`` is its id. Outside a
# session both are None. The worker sets both (from C) for the length of each
# call and drops a session's dict when the session ends or expires::
#
#     @tool(description="Add to a running total")
#     def add(self, x: float):
#         state = current().session
#         with state.lock:                 # calls of one session may run at once
#             state["total"] = state.get("total", 0.0) + x
#             return state["total"]


class SessionState(dict):
    """The state of one session in this worker: a dict, plus ``id`` and a
    re-entrant ``lock`` for read-modify-write steps that calls of the same
    session running at once on a thread worker must not interleave (single
    dict operations are atomic on their own)."""

    __slots__ = ("id", "lock")

    def __init__(self, session_id):
        super().__init__()
        self.id = session_id
        self.lock = threading.RLock()


# Session id -> SessionState, for every live session of this worker.
_sessions = {}

CallContext.session = property(
    lambda self: getattr(_local, "session", None),
    doc="The running call's SessionState (a dict), or None outside a session.")
CallContext.session_id = property(
    lambda self: getattr(_local, "session_id", None),
    doc="The running call's session id (str), or None outside a session.")

__all__ += ["SessionState"]
# ---- calls back into the host ------------------------------------------------
#
# ``current().call(POOL, TOOL, **args)`` runs another tool (of any pool, this
# one's too) and ``current().call_host(NAME, **args)`` a function the host
# application registered, both through the manager, and return the result as
# decoded JSON. The calling thread waits without holding the GIL. The nested
# call gets at most the time this call has left, and is cancelled with it
# (this thread then gets CallCancelled). Arguments and results are JSON only:
# arrays are refused as arguments (TypeError) and come back as nested lists.
# Failures raise CallError.

_KIND_TOOL = 1       # protocol.h: SP__HOSTCALL_TOOL
_KIND_FUNCTION = 2   # SP__HOSTCALL_FUNCTION

# Set by the worker (pyhost.c): _hostcall(kind, pool, name, args_json) -> (code, text).
_hostcall = None


class CallError(Exception):
    """A nested call or host function call failed.

    ``code`` is the error's name (``"SP_ENOTOOL"``, ``"SP_EDEADLOCK"``,
    ``"SP_EPYTHON"``...), ``category`` its category (``"validation"``,
    ``"pool"``, ``"timeout"``, ``"worker"``, ``"python"``...), ``message``
    what happened; when the nested tool raised, ``python_type`` is its
    exception's type and ``traceback`` its traceback text.
    """

    def __init__(self, code, category, message, python_type="", traceback=""):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.category = category
        self.message = message
        self.python_type = python_type
        self.traceback = traceback


def _arguments_json(args, what):
    import json
    try:
        return json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"arguments of {what} must be JSON values (arrays are not passed to "
                        f"nested calls; send lists): {exc}") from None


def _call_out(kind, pool, name, args):
    import json
    if _hostcall is None:
        raise RuntimeError("nested calls are only available inside a snakepit worker")
    what = (f"nested call to tool '{name}' of pool '{pool}'" if kind == _KIND_TOOL
            else f"host function '{name}'")
    code, text = _hostcall(kind, pool, name, _arguments_json(args, what))
    if code == 0:
        return json.loads(text)
    try:
        info = json.loads(text)
    except ValueError:
        info = {"message": text or f"{what} failed"}
    raise CallError(info.get("code", f"error {code}"), info.get("category", ""),
                    info.get("message", ""), info.get("python_type", ""),
                    info.get("traceback", ""))
