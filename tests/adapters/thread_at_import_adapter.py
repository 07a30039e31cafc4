"""An adapter whose module starts a thread when imported, which makes forking
its fork server unsafe: the pool must fall back to exec'd workers."""
import os
import threading

from snakepit_bridge.base_adapter import BaseAdapter, tool

_stop = threading.Event()
threading.Thread(target=_stop.wait, name="import-time-thread", daemon=True).start()


class ThreadAtImportAdapter(BaseAdapter):
    @tool(description="Process id and parent pid of the worker")
    def whoami(self):
        return {"pid": os.getpid(), "ppid": os.getppid()}
