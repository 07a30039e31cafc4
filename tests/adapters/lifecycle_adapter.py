"""LifecycleAdapter: tools that exercise recycling, shutdown and orphan handling.

Its atexit handler appends "exit <pid>" to the file named by the ATEXIT_FILE
environment variable, so a test can see that Python's shutdown really ran.
"""
import atexit
import os
import subprocess
import threading
import time

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool


def _record_exit():
    path = os.environ.get("ATEXIT_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"exit {os.getpid()}\n")


class LifecycleAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        atexit.register(_record_exit)
        self._hoard = []

    @thread_safe_method
    @tool(description="Process id of the worker")
    def pid(self):
        return os.getpid()

    @thread_safe_method
    @tool(description="time.sleep(seconds)")
    def sleep(self, seconds: float):
        time.sleep(seconds)
        return {"slept": seconds, "pid": os.getpid()}

    @thread_safe_method
    @tool(description="Pure-Python loop that never returns")
    def forever(self):
        while True:
            pass

    @thread_safe_method
    @tool(description="Keep `mb` MiB allocated in the worker")
    def allocate(self, mb: int):
        block = bytearray(mb * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1  # touch every page so it counts in RSS
        with self.acquire_lock():
            self._hoard.append(block)
        return {"held_mb": sum(len(b) for b in self._hoard) // (1024 * 1024)}

    @thread_safe_method
    @tool(description="Grow to `mb` MiB within this call, `step_mb` at a time, `pause_ms` apart")
    def grow(self, mb: int, step_mb: int = 20, pause_ms: float = 20.0):
        blocks = []
        for _ in range(0, mb, step_mb):
            block = bytearray(step_mb * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            blocks.append(block)
            time.sleep(pause_ms / 1000.0)
        return {"grew_mb": len(blocks) * step_mb}

    @thread_safe_method
    @tool(description="Crash with os._exit(9) unless `marker` exists; create it first")
    def crash_once(self, marker: str):
        if not os.path.exists(marker):
            with open(marker, "w", encoding="utf-8") as f:
                f.write(str(os.getpid()))
            os._exit(9)
        return {"pid": os.getpid(), "survived": True}

    @thread_safe_method
    @tool(description="Start a grandchild `sleep 300` (in a session of its own if "
                      "`new_session`), write both pids to `path`, then sleep `seconds`, "
                      "or end the worker with os._exit(7) if `exit_after`")
    def spawn_grandchild(self, path: str, seconds: float = 60.0, new_session: bool = False,
                         exit_after: bool = False):
        child = subprocess.Popen(["sleep", "300"], start_new_session=new_session)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {child.pid}\n")
        os.rename(path + ".tmp", path)
        if exit_after:
            os._exit(7)
        time.sleep(seconds)
        return {"child": child.pid}

    @thread_safe_method
    @tool(description="Name of the thread running this call")
    def thread_name(self):
        return threading.current_thread().name

    @thread_safe_method
    @tool(description="The cancelled flag of this call's context")
    def cancelled_flag(self):
        from snakepit_bridge.context import current
        return current().cancelled

    @thread_safe_method
    @tool(description="Loop until the call's context says it was cancelled; report it in a file")
    def cooperative(self, path: str):
        from snakepit_bridge.context import current
        ctx = current()
        while True:
            try:
                time.sleep(0.01)
            except BaseException:
                pass  # swallow the injected exception: rely on the flag alone
            if ctx.cancelled:
                with open(path, "w", encoding="utf-8") as f:
                    f.write("cancelled\n")
                return "stopped"

    @thread_safe_method
    @tool(description="Yield 0..n-1, sleeping `seconds` before each", supports_streaming=True)
    def ticks(self, n: int, seconds: float = 0.0):
        for i in range(n):
            if seconds:
                time.sleep(seconds)
            yield i
