"""What `snakepit serve` lets in: no cross-origin browser requests (Origin,
Sec-Fetch-Site, a Host that is not a loopback name), JSON bodies only for calls,
the security headers of every answer, paths that are not UTF-8, and requests
whose body framing is ambiguous (request smuggling).
"""

import json

import pytest

from conftest import Server, error_of, pool_yaml, raw, read_response

CALL = "/v1/pools/tp/tools/add"
ARGS = json.dumps({"a": 1, "b": 2})


# ---- cross-origin requests ------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost:1"},  # another port is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"},
])
def test_cross_origin_calls_are_refused(server, headers):
    status, _, body = server.request("POST", CALL, ARGS,
                                     dict(headers, **{"Content-Type": "application/json"}))
    err = error_of(status, body, 403, "http", "FORBIDDEN_ORIGIN")
    assert "--allow-origin" in err["message"] or "cross-site" in err["message"]
    # Reading statistics cross-origin is refused the same way.
    status, _, body = server.request("GET", "/v1/pools", headers=headers)
    error_of(status, body, 403, "http", "FORBIDDEN_ORIGIN")


def test_same_origin_calls_work(server):
    origin = f"http://127.0.0.1:{server.port}"
    status, _, body = server.request("POST", CALL, ARGS, {"Origin": origin,
                                                          "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and json.loads(body) == 3


def test_foreign_host_is_refused_on_loopback(server):
    # DNS rebinding: the page's own name now points at 127.0.0.1, so the browser
    # sees a same-origin request; the Host header still names the page's site.
    host = f"rebind.example:{server.port}"
    status, _, body = server.request("POST", CALL, ARGS, {"Host": host, "Origin": f"http://{host}"})
    err = error_of(status, body, 403, "http", "FORBIDDEN_ORIGIN")
    assert "rebind.example" in err["message"]
    for ok in ("localhost", f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]:1"):
        status, _, _ = server.request("GET", "/healthz", headers={"Host": ok})
        assert status == 200, ok


def test_link_to_the_dashboard_is_followed(server):
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    status, headers, _ = server.request("GET", "/", headers=nav)
    assert status == 200
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonp"])
def test_calls_need_a_json_body(server, ctype):
    status, _, body = server.request("POST", CALL, ARGS, {"Content-Type": ctype})
    err = error_of(status, body, 415, "http", "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in err["message"]


def test_json_content_type_with_parameters_and_empty_bodies(server):
    status, _, body = server.request("POST", CALL, ARGS,
                                     {"Content-Type": "Application/JSON; charset=utf-8"})
    assert status == 200 and json.loads(body) == 3
    # No body: no arguments, and nothing a form could have sent.
    status, _, body = server.request("POST", "/v1/pools/tp/tools/noop", b"")
    assert status == 200


def test_security_headers_on_every_answer(server):
    for method, path, body in (("GET", "/healthz", None), ("GET", "/v1/pools", None),
                               ("POST", CALL, ARGS), ("GET", "/nope", None), ("GET", "/", None)):
        status, headers, _ = server.request(method, path, body)
        assert headers.get("x-content-type-options") == "nosniff", (path, headers)
        assert headers.get("x-frame-options") == "DENY", (path, headers)
        assert headers.get("referrer-policy") == "no-referrer", (path, headers)
        assert "access-control-allow-origin" not in headers, (path, headers)


@pytest.fixture(scope="module")
def origin_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("origin"), "pools:\n" + pool_yaml("tp"),
               "--allow-origin", "http://localhost:3000")
    yield s
    assert s.stop() == 0, s.stderr()


def test_allowed_origin_gets_cors_answers(origin_server):
    o = {"Origin": "http://localhost:3000"}
    status, headers, _ = origin_server.request(
        "OPTIONS", CALL, headers=dict(o, **{"Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "content-type"}))
    assert status == 204, headers
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"].lower()
    status, headers, body = origin_server.request("POST", CALL, ARGS, o)
    assert status == 200 and json.loads(body) == 3
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert headers["vary"] == "Origin"
    # Any other origin is still refused, also its preflight.
    status, _, body = origin_server.request("OPTIONS", CALL, headers={"Origin": "http://localhost:3001"})
    error_of(status, body, 403, "http", "FORBIDDEN_ORIGIN")


def test_bad_allow_origin_is_a_usage_error(tmp_path):
    import subprocess
    from conftest import BIN
    for bad in ("localhost:3000", "http://x/path", "ftp://x", "http://x/"):
        p = subprocess.run([BIN, "serve", "--allow-origin", bad, "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 2 and "--allow-origin" in p.stderr, (bad, p.stderr)


# ---- paths that are not UTF-8 ----------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/pools/default/tools/%ff", "/v1/pools/%c3%28",
                                  "/v1/pools/tp/tools/%ed%a0%80", "/%ff"])
def test_path_that_is_not_utf8_gets_a_400(server, path):
    method = "POST" if path.count("/") == 5 else "GET"
    status, _, body = server.request(method, path, "{}" if method == "POST" else None)
    err = error_of(status, body, 400, "http", "BAD_PATH")
    assert "UTF-8" in err["message"]
    # The server keeps serving.
    assert server.request("GET", "/healthz")[0] == 200


# ---- ambiguous framing (request smuggling) ------------------------------------------

@pytest.mark.parametrize("framing", [
    b"Content-Length: 2\r\nContent-Length: 40\r\n",
    b"Content-Length: 2\r\nContent-Length: 2\r\n",
    b"Content-Length: 2, 2\r\n",
    b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
])
def test_ambiguous_framing_is_400_and_closes(server, framing):
    smuggled = b"GET /v1/pools HTTP/1.1\r\nHost: localhost\r\n\r\n"
    req = (b"POST /v1/pools/tp/tools/noop HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/json\r\n" + framing + b"\r\n{}\r\n0\r\n\r\n" + smuggled)
    s = raw(server, req)
    try:
        status, headers, body = read_response(s)
        assert status == 400, (status, body)
        # A list in one Content-Length is refused by the HTTP library itself.
        if headers.get("content-type") == "application/json":
            err = error_of(status, body, 400, "http", "BAD_FRAMING")
            assert "ambiguous" in err["message"] or "Transfer-Encoding" in err["message"]
        assert headers.get("connection", "").lower() == "close"
        s.settimeout(5)
        rest = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except ConnectionResetError:
            pass
        assert b"HTTP/1.1" not in rest, rest  # the smuggled request was never answered
    finally:
        s.close()


# ---- one definition of valid arguments -------------------------------------------

def nested(levels):
    return '{"value": ' + "[" * levels + "]" * levels + "}"


def test_deep_arguments_are_a_400_not_a_python_error(server):
    for levels in (1001, 1500, 2048):
        status, _, body = server.request("POST", "/v1/pools/tp/tools/echo", nested(levels))
        err = error_of(status, body, 400, "validation", "SP_EBADJSON")
        assert "nested more than 512 levels" in err["message"] and "column" in err["message"]
    status, _, body = server.request("POST", "/v1/pools/tp/tools/echo", nested(510))
    assert status == 200, body[:300]


def test_integers_python_takes_are_accepted(server):
    for value in (2 ** 63, 2 ** 64, -(2 ** 70), 10 ** 4299):
        status, _, body = server.request("POST", "/v1/pools/tp/tools/echo",
                                         '{"value": %d}' % value)
        assert status == 200 and json.loads(body) == value, body[:200]
    status, _, body = server.request("POST", "/v1/pools/tp/tools/echo", '{"value": 1%s}' % ("0" * 4300))
    err = error_of(status, body, 400, "validation", "SP_EBADJSON")
    assert "4301 digits" in err["message"]
