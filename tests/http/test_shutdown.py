"""Graceful stop of `snakepit serve` on SIGTERM: new connections are refused,
open ones get 503 for new calls and /readyz, the call in flight finishes with
its result, then the server and every worker exit.
"""

import json
import os
import signal
import socket
import threading
import time

from conftest import Server, error_of, pool_yaml, send


def alive(pid):
    """True if pid runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_drains_then_stops(tmp_path):
    s = Server(tmp_path, "pools:\n" + pool_yaml("tt", "thread", threads=4), "--drain-timeout", "10")
    try:
        pids = [w["pid"] for w in s.get_json("/v1/pools/tt")["workers"]]
        assert pids and all(alive(p) for p in pids)
        k1, k2 = s.conn(), s.conn()
        assert send(k1, "GET", "/healthz")[0] == 200   # open, kept-alive connections
        assert send(k2, "GET", "/healthz")[0] == 200
        out = {}
        t = threading.Thread(target=lambda: out.update(r=s.call("tt", "sleep", {"seconds": 1.5})))
        t.start()
        deadline = time.monotonic() + 5
        while (st := s.get_json("/v1/pools/tt"))["busy_slots"] < 1:
            assert t.is_alive(), f"the call ended before it was seen running: {out}"
            assert time.monotonic() < deadline, st
            time.sleep(0.02)

        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while "draining" not in s.stderr():
            assert time.monotonic() < deadline, s.stderr()
            time.sleep(0.02)

        # No new connections.
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        assert refused, "a new connection was accepted while draining"
        # Open connections: not ready, new calls refused with 503, and asked to close.
        status, headers, body = send(k1, "GET", "/readyz")
        assert status == 503 and json.loads(body)["ready"] is False
        assert headers.get("connection", "").lower() == "close"
        status, headers, body = send(k2, "POST", "/v1/pools/tt/tools/noop", "{}")
        error_of(status, body, 503, "pool", "SP_ESTOPPED")
        assert headers["retry-after"] == "5"

        # The call in flight finishes with its result.
        t.join(10)
        assert out["r"][0] == 200 and json.loads(out["r"][2])["slept"] == 1.5

        rc = s.proc.wait(15)
        assert rc == 0, s.stderr()
        assert "snakepit: stopped" in s.stderr()
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids), "workers outlived the server"
    finally:
        s.stop()


def test_second_signal_exits_at_once(tmp_path):
    s = Server(tmp_path, "pools:\n" + pool_yaml("tt", "thread", threads=2), "--drain-timeout", "30")
    try:
        def blocked():
            try:
                s.call("tt", "sleep", {"seconds": 5})
            except OSError:
                pass  # the server exits under it

        t = threading.Thread(target=blocked)
        t.daemon = True
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        rc = s.proc.wait(10)
        assert rc == 128 + signal.SIGTERM and time.monotonic() - t0 < 3, s.stderr()
        assert "exiting now" in s.stderr()
    finally:
        s.stop()
