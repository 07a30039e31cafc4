"""Adapters holding a NumPy "model" built in the constructor, for preload.

ModelAdapter: weights of adapter_args[0] MiB (default 64), filled in the
constructor; post_fork() records the worker that ran it and seeds a per-worker
RNG. The others break preloading on purpose: a thread or a socket left by the
constructor, or a post_fork() that raises.
"""
import os
import random
import socket
import threading

import numpy as np

from snakepit_bridge.base_adapter import BaseAdapter, tool


class ModelAdapter(BaseAdapter):
    def __init__(self, adapter_args=None):
        super().__init__()
        mib = int(adapter_args[0]) if adapter_args else 64
        self.weights = np.arange(mib * 131072, dtype=np.float64)   # 8 bytes each
        self.built_in = os.getpid()
        self.post_fork_pid = None
        self.seed = None
        self._hold = []

    def post_fork(self):
        self.post_fork_pid = os.getpid()
        self.seed = random.SystemRandom().getrandbits(32)

    @tool(description="Who built the model, who ran post_fork, who answers")
    def info(self):
        return {"pid": os.getpid(), "ppid": os.getppid(), "built_in": self.built_in,
                "post_fork_pid": self.post_fork_pid, "seed": self.seed,
                "worker_id": os.environ.get("SNAKEPIT_WORKER_ID"),
                "model_bytes": int(self.weights.nbytes)}

    @tool(description="Sum of every stride-th weight from start")
    def checksum(self, start: int = 0, stride: int = 4096):
        return {"sum": float(self.weights[start::stride].sum()), "pid": os.getpid()}

    @tool(description="Keep mib MiB of private memory in this worker")
    def hold(self, mib: int):
        self._hold.append(np.ones(mib * 131072, dtype=np.float64))
        return {"held_mib": mib * len(self._hold)}


class ThreadInInitAdapter(ModelAdapter):
    def __init__(self, adapter_args=None):
        super().__init__(adapter_args or ["1"])
        self._stop = threading.Event()
        threading.Thread(target=self._stop.wait, name="model-refresher", daemon=True).start()


class SocketInInitAdapter(ModelAdapter):
    def __init__(self, adapter_args=None):
        super().__init__(adapter_args or ["1"])
        self._conn = socket.socketpair()


class BadPostForkAdapter(ModelAdapter):
    def __init__(self, adapter_args=None):
        super().__init__(adapter_args or ["1"])

    def post_fork(self):
        raise RuntimeError("no GPU context for worker " + os.environ.get("SNAKEPIT_WORKER_ID", "?"))


class FirstWorkerOnlyAdapter(ModelAdapter):
    """post_fork() works in w1 only: its replacements fail to start."""

    def __init__(self, adapter_args=None):
        super().__init__(adapter_args or ["1"])

    def post_fork(self):
        if os.environ.get("SNAKEPIT_WORKER_ID") != "w1":
            raise RuntimeError("no GPU context for worker " + os.environ["SNAKEPIT_WORKER_ID"])
        super().post_fork()
