"""`snakepit-worker --listen HOST:PORT`: a worker that accepts one TCP
connection instead of inheriting a socket from a manager, spoken to here with
the wire protocol of src/core/protocol.h written out by hand (16-byte header:
magic 'S', version 1, type, flags, u32 body length, u64 request id, all
little-endian).
"""

import json
import os
import re
import socket
import struct
import sysconfig
import subprocess
import time
from pathlib import Path

import pytest

from test_cli import ADAPTERS, BIN

WORKER = os.environ.get("SNAKEPIT_WORKER_BIN") or str(Path(BIN).with_name("snakepit-worker"))

HELLO, CALL, RESULT, ERROR, PING, PONG, SHUTDOWN = 1, 2, 3, 4, 7, 8, 10
HEADER = struct.Struct("<BBBBIQ")


def frame(ftype, req_id, body=b""):
    return HEADER.pack(0x53, 1, ftype, 0, len(body), req_id) + body


def call_body(tool, args, timeout_ms=5000):
    t = tool.encode()
    return struct.pack("<IH", timeout_ms, len(t)) + t + json.dumps(args).encode()


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_frame(sock):
    magic, version, ftype, _flags, length, req_id = HEADER.unpack(read_exact(sock, HEADER.size))
    assert (magic, version) == (0x53, 1)
    return ftype, req_id, read_exact(sock, length)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def listening_worker():
    port = free_port()
    proc = subprocess.Popen([WORKER, "--listen", f"127.0.0.1:{port}", "--adapter",
                             "testing_adapter.TestingAdapter", "--python-path", ADAPTERS,
                             "--worker-id", "w7", "--pool", "standalone"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    sock = None
    while sock is None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "worker did not listen within 30 s"
            time.sleep(0.05)
    yield proc, sock
    sock.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_listen_mode_speaks_the_protocol(listening_worker):
    proc, sock = listening_worker
    ftype, _, body = read_frame(sock)
    assert ftype == HELLO
    hello = json.loads(body)
    assert hello["pid"] == proc.pid and hello["worker_id"] == "w7" and hello["protocol"] == 1
    assert "add" in {t["name"] for t in hello["manifest"]["tools"]}

    # Two calls written at once (pipelined), answered by request id.
    sock.sendall(frame(CALL, 41, call_body("add", {"a": 2, "b": 3}))
                 + frame(CALL, 42, call_body("add", {"a": "x", "b": 1})))
    replies = dict((rid, (t, b)) for t, rid, b in (read_frame(sock), read_frame(sock)))
    assert replies[41] == (RESULT, b"5")
    etype, ebody = replies[42]
    assert etype == ERROR and ebody[0] == 1  # kind 1: validation
    assert b"'a'" in ebody[1:]               # the message names the argument

    # PING is echoed in PONG with the attach wait, the calls done so far and
    # whether the GIL is on now (as HELLO said: nothing turned it on since).
    sock.sendall(frame(PING, 0, b"12345678"))
    ftype, _, body = read_frame(sock)
    assert ftype == PONG and body[:8] == b"12345678" and len(body) == 25
    assert struct.unpack("<Q", body[16:24])[0] == 2
    assert body[24] == int(hello["gil_enabled"])
    assert hello["gil_enabled"] is not hello["free_threaded_build"]

    # SHUTDOWN: the worker finishes and exits cleanly.
    sock.sendall(frame(SHUTDOWN, 0))
    assert proc.wait(30) == 0


def test_listen_mode_rejects_a_bad_frame(listening_worker):
    proc, sock = listening_worker
    assert read_frame(sock)[0] == HELLO
    sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not our protocol
    ftype, _, body = read_frame(sock)
    assert ftype == ERROR and body[0] == 3   # kind 3: protocol
    assert proc.wait(30) == 4


def test_worker_finds_libpython_without_library_path():
    # A Python installed outside the loader's paths (/opt/python3.14t) is found
    # through the worker's RUNPATH: no LD_LIBRARY_PATH needed.
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    proc = subprocess.run([WORKER, "--help"], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "usage: snakepit-worker" in proc.stdout
    libdir = sysconfig.get_config_var("LIBDIR")     # the embedded Python's (this one's)
    if not libdir.startswith(("/usr/lib", "/lib")):    # outside the loader's default paths
        dynamic = subprocess.run(["readelf", "-d", WORKER], capture_output=True, text=True,
                                 check=True).stdout
        runpath = re.search(r"\(RUNPATH\).*\[(.*)\]", dynamic)
        assert runpath and libdir in runpath.group(1).split(":"), dynamic
