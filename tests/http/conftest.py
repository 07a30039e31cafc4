"""Shared fixtures of the `snakepit serve` tests: a server started on a free
loopback port with a temporary config, and small HTTP helpers (stdlib only).

Run with Debian's interpreter:

    SNAKEPIT_BIN=build/snakepit SP_TEST_ADAPTERS=tests/adapters \\
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/http

The server is started with `--listen 127.0.0.1:0` and the tests read the port it
picked from its "listening on http://..." line, so runs never collide on a port.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SNAKEPIT_BIN") or str(REPO / "build" / "snakepit")
ADAPTERS = os.environ.get("SP_TEST_ADAPTERS") or str(REPO / "tests" / "adapters")
BUILD_DIR = os.environ.get("SP_BUILD_DIR") or str(Path(BIN).resolve().parent)

START_TIMEOUT = 30  # seconds for the pools to start and the server to listen


def pool_yaml(name, profile="process", threads=None, size=1, extra="",
              adapter="testing_adapter.TestingAdapter"):
    """One pool entry of a test adapter (tests/adapters/, by default testing_adapter.py)."""
    lines = [f"  - name: {name}",
             f"    worker_profile: {profile}",
             f"    pool_size: {size}",
             f"    adapter: {adapter}",
             f"    python_path: [{json.dumps(ADAPTERS)}]",
             "    timeout: 20s"]
    if threads is not None:
        lines.append(f"    threads_per_worker: {threads}")
    lines.extend("    " + e for e in extra.strip().splitlines() if e.strip())
    return "\n".join(lines) + "\n"


class Server:
    """A running `snakepit serve`; stderr goes to a file the tests can read."""

    def __init__(self, tmp, config, *args, preexec=None):
        self.tmp = Path(tmp)
        self.cfg = self.tmp / "pools.yaml"
        source = []  # config None: the pool comes from args (--adapter ...)
        if config is not None:
            self.cfg.write_text(config)
            source = ["-c", str(self.cfg)]
        self.log_path = self.tmp / "serve.log"
        self.log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen([BIN, "serve", *source, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env,
                                     preexec_fn=preexec)
        deadline = time.monotonic() + START_TIMEOUT
        self.url = None
        while time.monotonic() < deadline:
            m = re.search(r"listening on (http://[0-9.]+:(\d+))", self.stderr())
            if m:
                self.url, self.port = m.group(1), int(m.group(2))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.url is None:
            self.stop()
            raise RuntimeError(f"snakepit serve did not start:\n{self.stderr()}")

    def stderr(self):
        return self.log_path.read_text(errors="replace")

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection; returns (status, headers, body bytes)."""
        c = self.conn(timeout)
        try:
            return send(c, method, path, body, headers)
        finally:
            c.close()

    def call(self, pool, tool, args=None, headers=None, query=""):
        body = json.dumps(args if args is not None else {})
        return self.request("POST", f"/v1/pools/{pool}/tools/{tool}{query}", body, headers)

    def get_json(self, path, headers=None):
        status, _, body = self.request("GET", path, headers=headers)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def send(conn, method, path, body=None, headers=None):
    """A request on an open http.client connection: (status, headers dict lower-cased, body).
    A POST body is declared JSON unless headers name a Content-Type, as an API client does."""
    headers = dict(headers or {})
    if method == "POST" and body and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def error_of(status, body, want_status, category, code):
    """Asserts a JSON error reply and returns its "error" object."""
    assert status == want_status, (status, body)
    doc = json.loads(body)
    err = doc["error"]
    assert set(err) == {"category", "code", "message", "python_type", "traceback"}, err
    assert err["category"] == category, err
    assert err["code"] == code, err
    assert err["message"], err
    return err


@pytest.fixture(scope="session", params=["0", "2"], ids=["http-on-loop", "http-2-threads"])
def server(request, tmp_path_factory):
    """The main server: `tp` process 1x1, `tt` thread 1x4, `sat` (no queue) and
    `qt` (100 ms queue timeout) for overload, `crash` for a worker that exits
    (with thread_safety_checks, for the checker report in stats), `racy` (thread
    1x4, the racy adapter with thread_safety_checks) and `checked` (process 2x1
    with thread_safety_checks) for the workers' reports.
    Small limits so the limit tests stay fast: 64 KiB bodies, 2 s read timeout.
    Every test runs against both ways of running HTTP: on the runtime's loop
    thread (--http-threads 0, the default on small machines) and on MHD's own threads."""
    config = ("pools:\n" + pool_yaml("tp") + pool_yaml("tt", "thread", threads=4)
              + pool_yaml("sat", extra="max_queue: 0\npipeline_depth: 0")
              + pool_yaml("qt", extra="queue_timeout: 100ms\npipeline_depth: 0")
              + pool_yaml("crash", extra="thread_safety_checks: true")
              + pool_yaml("racy", "thread", threads=4, extra="thread_safety_checks: true",
                          adapter="racy_adapter.RacyAdapter")
              + pool_yaml("checked", size=2, extra="thread_safety_checks: true"))
    s = Server(tmp_path_factory.mktemp("serve"), config, "--max-body", "64KiB", "--read-timeout", "2",
               "--http-threads", request.param)
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr()


def raw(server, data, timeout=10):
    """Sends raw bytes on a new socket; returns the socket (caller closes)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.sendall(data)
    return s


def read_response(s):
    """Reads one response (headers + Content-Length body); returns (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body
