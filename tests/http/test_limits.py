"""Limits and bad input of `snakepit serve`: body size, slow and idle clients,
bearer-token authentication, and the command line refusing unsafe or bad setups.
"""

import json
import os
import socket
import subprocess
import time

import pytest

from conftest import BIN, Server, error_of, pool_yaml, raw, read_response


# ---- body size --------------------------------------------------------------

def test_body_at_the_limit_is_accepted(server):
    value = "x" * (64 * 1024 - 64)
    status, _, body = server.call("tp", "echo", {"value": value})
    assert status == 200 and json.loads(body) == value


def test_declared_oversized_body_is_413_before_it_is_sent(server):
    s = raw(server, b"POST /v1/pools/tp/tools/echo HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
    try:
        status, headers, body = read_response(s)  # answered without sending a byte of body
    finally:
        s.close()
    err = error_of(status, body, 413, "http", "PAYLOAD_TOO_LARGE")
    assert "70000" in err["message"] and "65536" in err["message"]
    assert headers.get("connection", "").lower() == "close"


def test_chunked_oversized_body_is_413(server):
    chunk = b"a" * 30000
    req = (b"POST /v1/pools/tp/tools/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: application/json\r\n\r\n"
           + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
    s = raw(server, req)
    try:
        status, _, body = read_response(s)
    finally:
        s.close()
    error_of(status, body, 413, "http", "PAYLOAD_TOO_LARGE")


def test_chunked_body_within_the_limit_works(server):
    payload = json.dumps({"value": "chunky"}).encode()
    req = (b"POST /v1/pools/tp/tools/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: application/json\r\n\r\n"
           + b"%x\r\n" % 5 + payload[:5] + b"\r\n" + b"%x\r\n" % (len(payload) - 5) + payload[5:]
           + b"\r\n0\r\n\r\n")
    s = raw(server, req)
    try:
        status, _, body = read_response(s)
    finally:
        s.close()
    assert status == 200 and json.loads(body) == "chunky"


# ---- slow and idle clients ------------------------------------------------------

def _closed_after(s, limit):
    """Seconds until the server closes s (recv gets EOF or a reset), at most limit."""
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    return time.monotonic() - t0


def test_stalled_request_is_closed_after_the_read_timeout(server):
    # Headers promise 10 bytes of body; only one arrives. --read-timeout is 2 s.
    s = raw(server, b"POST /v1/pools/tp/tools/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n"
                    b"Content-Type: application/json\r\n\r\n{")
    try:
        elapsed = _closed_after(s, 10)
    finally:
        s.close()
    assert 1.0 < elapsed < 6, f"closed after {elapsed:.1f} s"


def test_half_sent_headers_are_closed_after_the_read_timeout(server):
    s = raw(server, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    try:
        elapsed = _closed_after(s, 10)
    finally:
        s.close()
    assert 1.0 < elapsed < 6, f"closed after {elapsed:.1f} s"


def test_long_call_outlives_the_read_timeout(server):
    # A connection waiting for its call is not idle: a 2.5 s call beats a 2 s read timeout.
    status, _, body = server.call("tt", "sleep", {"seconds": 2.5})
    assert status == 200 and json.loads(body)["slept"] == 2.5


# ---- authentication ------------------------------------------------------------

@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    tok = d / "token"
    tok.write_text("s3cret-token\n")
    os.chmod(tok, 0o600)
    s = Server(d, "pools:\n" + pool_yaml("tp"), "--token-file", str(tok))
    yield s
    assert s.stop() == 0


def test_api_requires_the_bearer_token(token_server):
    for method, path in (("GET", "/v1/pools"), ("GET", "/v1/pools/tp"), ("GET", "/metrics"),
                         ("POST", "/v1/pools/tp/tools/noop"), ("GET", "/v1/pools/tp/tools")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"},
                        {"Authorization": "Bearer s3cret-token-and-more"}):
            status, h, body = token_server.request(method, path, body=b"{}" if method == "POST" else None,
                                                   headers=headers)
            error_of(status, body, 401, "http", "UNAUTHORIZED")
            assert h["www-authenticate"].startswith("Bearer")
    good = {"Authorization": "Bearer s3cret-token"}
    status, _, body = token_server.request("POST", "/v1/pools/tp/tools/add", body='{"a":1,"b":2}', headers=good)
    assert status == 200 and json.loads(body) == 3
    assert token_server.request("GET", "/metrics", headers=good)[0] == 200
    # Unknown paths do not reveal themselves without the token either.
    assert token_server.request("GET", "/nope")[0] == 401
    assert token_server.request("GET", "/nope", headers=good)[0] == 404


def test_probes_and_the_page_need_no_token(token_server):
    for path in ("/healthz", "/readyz", "/"):
        assert token_server.request("GET", path)[0] == 200, path


# ---- the command line ----------------------------------------------------------

def serve_fails(*args):
    p = subprocess.run([BIN, "serve", *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def test_non_loopback_needs_a_token_or_insecure():
    for addr in ("0.0.0.0:0", ":0", "[::]:0"):
        rc, err = serve_fails("--listen", addr)
        assert rc == 2, err
        assert "non-loopback" in err and "--token-file" in err and "--insecure" in err


def test_bad_options_are_usage_errors(tmp_path):
    assert serve_fails("--listen", "nonsense")[0] == 2
    assert serve_fails("--listen", "127.0.0.1:99999")[0] == 2
    assert serve_fails("--listen", "1.2.3.4")[0] == 2
    rc, err = serve_fails("--token-file", str(tmp_path / "missing"))
    assert rc == 2 and "missing" in err
    (tmp_path / "empty").write_text("\n")
    rc, err = serve_fails("--token-file", str(tmp_path / "empty"))
    assert rc == 2 and "token" in err
    for opt, val in (("--max-body", "0"), ("--max-body", "2GiB"), ("--read-timeout", "0"),
                     ("--http-threads", "x"), ("--drain-timeout", "-1"), ("--timeout", "0")):
        rc, err = serve_fails(opt, val)
        assert rc == 2, (opt, val, err)
    rc, err = serve_fails("extra-arg")
    assert rc == 2 and "extra-arg" in err
    p = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--token-file" in p.stdout and "--listen" in p.stdout


def test_busy_port_fails_before_starting_workers(server):
    t0 = time.monotonic()
    p = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{server.port}"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3 and "cannot listen" in p.stderr and "in use" in p.stderr
    assert time.monotonic() - t0 < 5
