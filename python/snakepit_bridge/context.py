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

__all__ = ["CallCancelled", "CallContext", "current"]


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
