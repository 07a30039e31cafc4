"""HostKillerAdapter: a tool that kills the snakepit process its worker belongs
to (a node, a server), for tests of what survives the loss of a host.

Spec ``host_killer_adapter.HostKillerAdapter`` with ``tests/adapters`` on ``sys.path``.
"""

import os
import time

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, tool


class HostKillerAdapter(ThreadSafeAdapter):
    __test__ = False

    @tool(description="SIGKILL the snakepit process the worker belongs to")
    def kill_host(self):
        pid = os.getppid()  # a fork server may stand between a worker and its host
        while pid > 1:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "snakepit":
                    break
            with open(f"/proc/{pid}/status") as f:
                pid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
        if pid > 1:
            os.kill(pid, 9)
        time.sleep(30)  # the host is gone; nothing answers this call

    @tool(description="Add two integers")
    def add(self, a: int, b: int) -> int:
        return a + b
