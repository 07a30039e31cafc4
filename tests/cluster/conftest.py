"""Fixtures of the cluster tests: a real nats-server on a free loopback port,
`snakepit serve --nats` nodes as separate processes, the CLI, the load driver
(bench/bench_nats) and a minimal NATS client (the text protocol: CONNECT, SUB,
PUB, MSG) for the service-protocol subjects.

    SNAKEPIT_BIN=build/snakepit SP_BENCH_NATS=build/bench/bench_nats \\
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/cluster
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SNAKEPIT_BIN") or str(REPO / "build" / "snakepit")
LOAD = os.environ.get("SP_BENCH_NATS") or str(REPO / "build" / "bench" / "bench_nats")
ADAPTERS = os.environ.get("SP_TEST_ADAPTERS") or str(REPO / "tests" / "adapters")
NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """nats-server on 127.0.0.1:port; restart() keeps the port."""

    def __init__(self, tmp, token=None, conf=None, jetstream=False, user=None):
        self.port = free_port()
        self.token = token
        self.user = user  # (name, password)
        self.conf = conf
        self.jetstream = jetstream
        self.tmp = Path(tmp)
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.token:
            args += ["--auth", self.token]
        if self.user:
            args += ["--user", self.user[0], "--pass", self.user[1]]
        if self.jetstream:
            args += ["-js", "-sd", str(self.tmp / "jetstream")]
        if self.conf:
            path = self.tmp / "nats.conf"
            path.write_text(self.conf)
            args += ["-c", str(path)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, pause=0.5):
        self.stop()
        time.sleep(pause)
        self.start()


def pool_yaml(name="work", size=1, extra=""):
    lines = [f"  - name: {name}", "    worker_profile: process", f"    pool_size: {size}",
             "    adapter: testing_adapter.TestingAdapter",
             f"    python_path: [{json.dumps(ADAPTERS)}]", "    timeout: 20s"]
    lines += ["    " + e for e in extra.strip().splitlines() if e.strip()]
    return "pools:\n" + "\n".join(lines) + "\n"


class Node:
    """A `snakepit serve --nats URL` process; stderr goes to a file."""

    def __init__(self, tmp, url, name, config, *args):
        self.name = name
        self.dir = Path(tmp) / name
        self.dir.mkdir(exist_ok=True)
        cfg = self.dir / "pools.yaml"
        cfg.write_text(config)
        self.log_path = self.dir / "node.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--nats", url, "-c", str(cfg), "--nats-name", name, "--drain-timeout", "10",
             *args], stdout=subprocess.DEVNULL, stderr=self.log,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        deadline = time.time() + 30
        while time.time() < deadline:
            if "serving pools" in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {name} exited: {self.text()}")
            time.sleep(0.05)
        raise RuntimeError(f"node {name} did not start: {self.text()}")

    def text(self):
        return self.log_path.read_text()

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=30):
        return self.proc.wait(timeout)


def cli(*args, timeout=30, env=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def load(url, tool, args="{}", calls=20, concurrency=4, timeout_ms=20000, pool="work",
         idempotent=False, token=None, background=False):
    cmd = [LOAD, "--nats", url, "--pool", pool, "--tool", tool, "--args", args, "--calls",
           str(calls), "--concurrency", str(concurrency), "--timeout", str(timeout_ms)]
    if idempotent:
        cmd.append("--idempotent")
    if token:
        cmd += ["--token", token]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if background:
        return p
    return finish(p)


def finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def node_pids(url):
    """{worker pid: node name} from `snakepit nodes`."""
    r = cli("nodes", "--nats", url, "--json")
    assert r.returncode == 0, r.stderr
    pids = {}
    for n in json.loads(r.stdout)["nodes"]:
        for p in n["pools"]:
            for w in (p["stats"] or {}).get("workers", []):
                pids[str(w["pid"])] = n["name"]
    return pids


def nats_request_all(url, subject, wait=1.0, token=None):
    """Publishes an empty request on subject; returns every reply (JSON) within wait."""
    host, port = url[len("nats://"):].split(":")
    s = socket.create_connection((host, int(port)), 5)
    f = s.makefile("rb")
    f.readline()  # INFO
    connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True}
    if token:
        connect["auth_token"] = token
    s.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB _T.reply 1\r\n"
              + f"PUB {subject} _T.reply 0\r\n\r\nPING\r\n".encode())
    replies = []
    s.settimeout(wait)
    deadline = time.time() + wait
    try:
        while time.time() < deadline:
            line = f.readline()
            if not line:
                break
            if line.startswith(b"MSG "):
                size = int(line.split()[-1])
                body = f.read(size + 2)[:-2]
                replies.append(json.loads(body))
            elif line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
    except (socket.timeout, OSError):
        pass
    s.close()
    return replies


@pytest.fixture
def nats(tmp_path):
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (scripts/install-deps.sh test installs it)")
    server = NatsServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def nats_js(tmp_path):
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (scripts/install-deps.sh test installs it)")
    server = NatsServer(tmp_path, jetstream=True)
    yield server
    server.stop()


@pytest.fixture
def nodes(tmp_path):
    started = []

    def start(url, name, config=None, *args):
        n = Node(tmp_path, url, name, config or pool_yaml(), *args)
        started.append(n)
        return n

    yield start
    for n in started:
        n.kill()
        try:
            n.wait(10)
        except subprocess.TimeoutExpired:
            pass
