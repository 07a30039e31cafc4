"""`snakepit serve` under connection abuse: half-sent requests that exhaust its
file descriptors, slowloris clients that trickle headers, and one client
hoarding connections. Each test opens a bounded number of loopback connections
and closes them itself.
"""

import re
import resource
import socket
import time

import pytest

from conftest import Server, pool_yaml

HALF = b"POST /v1/pools/tp/tools/echo HTTP/1.1\r\nHost: localhost\r\nContent-Le"


def open_many(port, n, data=HALF, source="127.0.0.1"):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.bind((source, 0))
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(data)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def healthz_seconds(server, timeout=8):
    """Seconds a fresh client waits for GET /healthz (timeout if it is never answered)."""
    t0 = time.monotonic()
    try:
        status, _, _ = server.request("GET", "/healthz", timeout=timeout)
    except OSError:
        return timeout
    assert status == 200
    return time.monotonic() - t0


def closed_by_server(s):
    """True if the server closed s (EOF or reset), without waiting."""
    s.setblocking(False)
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def few_fds():
    # Low enough that the half-sent connections below run the server out of descriptors.
    resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))


@pytest.mark.parametrize("threads", ["0", "1"])
def test_accepts_again_after_running_out_of_descriptors(tmp_path, threads):
    s = Server(tmp_path, "pools:\n" + pool_yaml("tp"), "--http-threads", threads, preexec=few_fds)
    try:
        for _ in range(2):
            socks = open_many(s.port, 220)
            time.sleep(0.5)
            for c in socks:
                c.close()
            time.sleep(0.5)
            # Once the half-sent connections are gone, a new client is served at once.
            assert healthz_seconds(s) < 3, s.stderr()[-2000:]
    finally:
        assert s.stop() == 0


@pytest.fixture(scope="module", params=["0", "2"], ids=["http-on-loop", "http-2-threads"])
def guarded(request, tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("guard"), "pools:\n" + pool_yaml("tp"),
               "--http-threads", request.param, "--read-timeout", "2",
               "--max-connections", "120", "--max-connections-per-client", "60")
    yield s
    assert s.stop() == 0, s.stderr()


def test_slowloris_connections_are_closed_after_the_read_timeout(server):
    # Each connection sends one more header line every 0.5 s: never idle for the
    # 2 s read timeout, yet its request is never complete.
    socks = open_many(server.port, 40, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    try:
        t0 = time.monotonic()
        line = 0
        while time.monotonic() - t0 < 5:
            time.sleep(0.5)
            line += 1
            for c in socks:
                try:
                    c.sendall(b"X-Pad-%d: a\r\n" % line)
                except OSError:
                    pass
        closed = sum(closed_by_server(c) for c in socks)
        assert closed == len(socks), f"{len(socks) - closed} of {len(socks)} still open after 5 s"
        assert healthz_seconds(server) < 1.0
        status, _, body = server.request("GET", "/metrics")
        m = re.search(rb'snakepit_http_connections_shed_total\{reason="request_timeout"\} (\d+)', body)
        assert status == 200 and m and int(m.group(1)) >= len(socks), body[-600:]
    finally:
        for c in socks:
            c.close()


def test_a_full_server_still_serves_new_clients(guarded):
    # More half-sent requests than the server takes: a new client displaces the
    # oldest of them instead of waiting for the read timeout.
    socks = open_many(guarded.port, 60, source="127.0.0.2") + open_many(guarded.port, 60, source="127.0.0.3")
    socks += open_many(guarded.port, 10, source="127.0.0.4")
    try:
        time.sleep(0.3)
        for _ in range(5):
            assert healthz_seconds(guarded) < 1.0
    finally:
        for c in socks:
            c.close()


def test_one_client_cannot_hold_more_than_its_share(guarded):
    socks = open_many(guarded.port, 100, source="127.0.0.5")
    try:
        time.sleep(0.5)
        open_now = sum(not closed_by_server(c) for c in socks)
        assert open_now <= 60, f"one client address holds {open_now} connections (limit 60)"
        assert healthz_seconds(guarded) < 1.0
    finally:
        for c in socks:
            c.close()
