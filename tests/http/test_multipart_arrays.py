"""Arrays over HTTP: POST /v1/pools/{pool}/tools/{tool} with multipart/form-data
(a JSON part "args" and .npy parts named by argument), results as multipart
(a "result" part and one .npy part per returned array) for clients that accept
it, plain JSON with nested lists for those that do not; and `snakepit exec
--url --array/--out` through it. Multipart bodies are built and split here
with the standard library only, independently of the server's code.
"""

import hashlib
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

# The array front ends are tested with NumPy-made arrays and NumPy tools; a
# Python without NumPy (3.14t here) skips this file with the reason.
np = pytest.importorskip("numpy", reason="NumPy is not installed for this Python")

from conftest import BIN, Server, error_of, pool_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from npy_util import same_bits, sample  # noqa: E402  (shared with tests/cli)

ADAPTER = "frontend_array_adapter.FrontendArrayAdapter"
DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16",
          ">i4", ">f8", ">c8"]


def npy_bytes(a):
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


def form(parts):
    """A multipart/form-data body of (name, filename or None, content type or None, bytes)."""
    boundary = "b-" + uuid.uuid4().hex
    out = bytearray()
    for name, filename, ctype, data in parts:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename:
            disp += f'; filename="{filename}"'
        out += (disp + "\r\n").encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def split_multipart(ctype, body):
    """[(headers dict lower-cased, data)] of a multipart body."""
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    assert m, ctype
    delim = b"--" + m.group(1).encode()
    chunks = body.split(b"\r\n" + delim)
    assert chunks[0].startswith(delim), body[:200]
    chunks[0] = chunks[0][len(delim):]
    assert chunks[-1].startswith(b"--"), body[-200:]
    parts = []
    for c in chunks[:-1]:
        assert c.startswith(b"\r\n")
        head, _, data = c[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        parts.append((headers, data))
    return parts


def disposition(headers):
    return dict(re.findall(r'(\w+)="([^"]*)"', headers["content-disposition"]))


@pytest.fixture(scope="module", params=["0", "2"], ids=["http-on-loop", "http-2-threads"])
def srv(request, tmp_path_factory):
    """Both ways of running HTTP: on the runtime's loop thread and on MHD's own threads."""
    config = ("pools:\n" + pool_yaml("ap", adapter=ADAPTER)
              + pool_yaml("at", "thread", threads=2, adapter=ADAPTER))
    s = Server(tmp_path_factory.mktemp("arrays"), config, "--max-body", "1MiB", "--insecure",
               "--http-threads", request.param)
    yield s
    assert s.stop() == 0, s.stderr()


def call(srv, tool, parts, accept="multipart/form-data", pool="ap", extra=None):
    body, ctype = form(parts)
    headers = {"Content-Type": ctype, **(extra or {})}
    if accept:
        headers["Accept"] = accept
    return srv.request("POST", f"/v1/pools/{pool}/tools/{tool}", body, headers)


def arrays_of(status, headers, body):
    """The JSON result and the {path: array} of a multipart reply."""
    assert status == 200, body[:500]
    assert headers["content-type"].startswith("multipart/form-data; boundary="), headers
    parts = split_multipart(headers["content-type"], body)
    first, data = parts[0]
    assert disposition(first) == {"name": "result"}
    assert first["content-type"] == "application/json"
    arrays = []
    for h, d in parts[1:]:
        disp = disposition(h)
        assert h["content-type"] == "application/octet-stream"
        assert disp["filename"] == disp["name"].replace("/", ".") + ".npy"
        arrays.append((disp["name"], np.load(io.BytesIO(d))))
    return json.loads(data), arrays


@pytest.mark.parametrize("pool", ["ap", "at"])
def test_every_dtype_round_trips_bit_exact(srv, pool):
    for i, dt in enumerate(DTYPES):
        a = sample(dt, (3, 4) if i % 2 else (5,), seed=i)
        doc, arrays = arrays_of(*call(srv, "echo", [("a", "a.npy", "application/octet-stream",
                                                     npy_bytes(a))], pool=pool))
        assert doc == {"$array": 0}, dt
        assert [n for n, _ in arrays] == ["result"]
        same_bits(arrays[0][1], a)


def test_empty_and_zero_dimensional_arrays(srv):
    for a in (np.zeros((0, 3)), np.zeros(0, dtype=np.int8), np.float32(2.5).reshape(()),
              np.array(7, dtype=">i8"), np.zeros((2, 0, 4), dtype=np.complex64)):
        doc, arrays = arrays_of(*call(srv, "echo", [("a", "a.npy", None, npy_bytes(a))]))
        assert doc == {"$array": 0}
        same_bits(arrays[0][1], a)


def test_fortran_order_and_json_args(srv):
    a = np.asfortranarray(sample("f8", (3, 5), seed=1))
    a[~np.isfinite(a)] = 0.25
    b = np.ones((3, 5))
    doc, arrays = arrays_of(*call(srv, "axpy", [
        ("args", None, "application/json", b'{"scale": 2}'),
        ("a", "a.npy", None, npy_bytes(a)),
        ("b", "b.npy", "application/octet-stream", npy_bytes(b))]))
    assert doc == {"$array": 0}
    same_bits(arrays[0][1], a + 2 * b)
    # The tool saw the C-ordered values of a Fortran-ordered upload.
    status, h, body = call(srv, "digest", [("args", None, None, b'{"label": "f"}'),
                                           ("a", "a.npy", None, npy_bytes(a))], accept=None)
    assert status == 200, body
    d = json.loads(body)
    assert d == {"dtype": "float64", "shape": [3, 5], "label": "f",
                 "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}


def test_nested_paths_name_the_parts(srv):
    a = sample("i2", (2, 2), seed=5)
    doc, arrays = arrays_of(*call(srv, "nested", [("a", "a.npy", None, npy_bytes(a))]))
    assert doc == {"c": {"$array": 0}, "items": [{"$array": 1}, {"$array": 2}], "n": 1}
    assert [n for n, _ in arrays] == ["c", "items/0", "items/1"]
    same_bits(arrays[0][1], a)
    same_bits(arrays[1][1], a)
    assert arrays[2][1].tobytes() == b"raw"


def test_multipart_mixed_is_offered_too(srv):
    a = np.arange(4, dtype=np.uint8)
    status, h, body = call(srv, "double", [("a", "a.npy", None, npy_bytes(a))],
                           accept="application/json;q=0.5, multipart/mixed")
    assert status == 200 and h["content-type"].startswith("multipart/mixed; boundary="), h
    parts = split_multipart(h["content-type"], body)
    assert json.loads(parts[0][1]) == {"$array": 0}
    same_bits(np.load(io.BytesIO(parts[1][1])), a * 2)


def test_json_clients_get_lists(srv):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    for accept in (None, "application/json", "*/*", "multipart/form-data;q=0"):
        status, h, body = call(srv, "nested_arrays", [("a", "a.npy", None, npy_bytes(a))],
                               accept=accept)
        assert status == 200 and h["content-type"] == "application/json", (accept, h, body)
        doc = json.loads(body)
        assert doc == {"c": a.tolist(), "items": [a.tolist(), (a * 2).tolist()], "n": 1}, accept
    # A plain JSON call is unchanged, also when the client would take multipart.
    status, h, body = srv.request("POST", "/v1/pools/ap/tools/several", '{"a": [1, 2]}',
                                  {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"a": [1, 2]}


def test_bad_parts_are_400_naming_the_part(srv):
    good = npy_bytes(np.zeros(3))
    cases = [
        ([("a", "a.npy", None, b"\x93NUMPX" + good[6:])], "part 'a' (a.npy): not a .npy file: bad magic"),
        ([("a", "a.npy", None, good[:-3])], "part 'a' (a.npy): truncated .npy data"),
        ([("a", None, None, npy_bytes(np.array(["x"])))], "part 'a': unsupported .npy dtype '<U1'"),
        ([("a", None, None, npy_bytes(np.zeros(2, dtype=[("x", "<i4")])))], "part 'a': structured dtypes"),
        ([("a", None, "text/plain", b"hello")], "unknown part 'a': Content-Type text/plain"),
        ([("args", None, "image/png", b"{}")], "part 'args': Content-Type image/png"),
        ([("", None, None, good)], "multipart part 1 has no name"),
        ([("a", None, None, good), ("a", None, None, good)], "part 'a' is given twice"),
        ([("args", None, None, b'{"a": 1}'), ("a", None, None, good)],
         "argument 'a' is given both in part 'args' and as a .npy part"),
        ([("args", None, None, b'{"label": "x"}\x00junk'), ("a", None, None, good)],
         "part 'args' contains a NUL byte"),
    ]
    for parts, want in cases:
        status, _, body = call(srv, "echo", parts)
        err = error_of(status, body, 400, "validation", "SP_EINVAL")
        assert want in err["message"], (want, err)
    # Malformed bodies and content types.
    good_body, ctype = form([("a", None, None, good)])
    for body, ct, want in [
        (good_body[:-10], ctype, "no delimiter after its data"),
        (good_body, "multipart/form-data", "has no boundary parameter"),
        (b"garbage", ctype, "without its boundary"),
    ]:
        status, _, rbody = srv.request("POST", "/v1/pools/ap/tools/echo", body,
                                       {"Content-Type": ct, "Accept": "multipart/form-data"})
        err = error_of(status, rbody, 400, "validation", "SP_EINVAL")
        assert want in err["message"], (want, err)
    # A part name that is not UTF-8 (argument names are text).
    raw = (b'--B\r\nContent-Disposition: form-data; name="\xff\xfe"\r\n\r\n' + good
           + b"\r\n--B--\r\n")
    status, _, rbody = srv.request("POST", "/v1/pools/ap/tools/echo", raw,
                                   {"Content-Type": "multipart/form-data; boundary=B"})
    err = error_of(status, rbody, 400, "validation", "SP_EINVAL")
    assert "multipart part 1: its name is not valid UTF-8" in err["message"]
    # Only form-data is a call's multipart type, as only JSON is its other one.
    status, _, rbody = srv.request("POST", "/v1/pools/ap/tools/echo", good_body,
                                   {"Content-Type": ctype.replace("form-data", "mixed")})
    error_of(status, rbody, 415, "http", "UNSUPPORTED_MEDIA_TYPE")
    # Still serving.
    a = np.arange(3.0)
    doc, arrays = arrays_of(*call(srv, "echo", [("a", None, None, npy_bytes(a))]))
    same_bits(arrays[0][1], a)


def test_cross_site_multipart_is_refused(srv):
    """multipart/form-data is what a page's form can send without a preflight:
    the origin checks refuse it from other sites before the call runs."""
    good = npy_bytes(np.zeros(2))
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}):
        status, _, body = call(srv, "echo", [("a", None, None, good)], extra=headers)
        error_of(status, body, 403, "http", "FORBIDDEN_ORIGIN")
    status, _, body = call(srv, "echo", [("a", None, None, good)],
                           extra={"Origin": f"http://127.0.0.1:{srv.port}"})
    assert status == 200, body


def test_body_limit_applies_to_arrays(srv):
    """--max-body bounds the whole multipart body: an array just under it
    travels, a declared larger one is refused before it is sent."""
    a = sample("f8", (120_000,), seed=11)  # 960 KB of 1 MiB
    doc, arrays = arrays_of(*call(srv, "echo", [("a", "a.npy", None, npy_bytes(a))]))
    same_bits(arrays[0][1], a)
    body, ctype = form([("a", "a.npy", None, npy_bytes(np.zeros(200_000)))])  # 1.6 MB
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(f"POST /v1/pools/ap/tools/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode())
        resp = http.client.HTTPResponse(s)
        resp.begin()
        err = error_of(resp.status, resp.read(), 413, "http", "PAYLOAD_TOO_LARGE")
    finally:
        s.close()
    assert str(len(body)) in err["message"] and "1048576" in err["message"]
    assert srv.request("GET", "/healthz")[0] == 200


def cli(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIT_TOKEN")})


def test_cli_url_arrays_in_and_out(srv, tmp_path):
    a = sample("c8", (2, 3), seed=9)
    b = sample(">u4", (4,), seed=10)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "out"
    p = cli("exec", "--url", srv.url, "at", "several", "--array", f"a={tmp_path}/a.npy",
            "--array", f"b={tmp_path}/b.npy", "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc == {"a": {"$array": f"{out}/a.npy", "dtype": "complex64", "shape": [2, 3]},
                   "b": {"$array": f"{out}/b.npy", "dtype": "uint32", "shape": [4]}}
    same_bits(np.load(out / "a.npy"), a)
    same_bits(np.load(out / "b.npy"), b)
    # Nested paths, and without --out the lists of JSON.
    p = cli("exec", "--url", srv.url, "ap", "nested", "--array", f"a={tmp_path}/b.npy", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["items"][1]["$array"] == f"{out}/items.1.npy"
    assert np.load(out / "items.1.npy").tobytes() == b"raw"
    p = cli("exec", "--url", srv.url, "ap", "double", "--array", f"a={tmp_path}/b.npy")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == (b.astype("=u4") * 2).tolist()


def test_cli_url_bad_file_is_the_servers_400(srv, tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    p = cli("exec", "--url", srv.url, "ap", "echo", "--array", f"a={tmp_path}/bad.npy")
    assert p.returncode == 4, p.stderr
    assert "part 'a' (bad.npy): not a .npy file: bad magic" in p.stderr
