"""`snakepit exec|tools|stats|pools --url URL`: the CLI against a running server,
with the same output and exit codes as when it starts the pools itself.
"""

import json
import os
import subprocess
import time

import pytest

from conftest import BIN, Server, pool_yaml

EXIT_OK, EXIT_PYTHON, EXIT_USAGE, EXIT_CONFIG, EXIT_INVALID, EXIT_TIMEOUT, EXIT_WORKER, EXIT_BUSY = range(8)


def cli(*args, stdin="", env=None):
    e = dict(os.environ)
    e.pop("SNAKEPIT_TOKEN", None)
    e.pop("SNAKEPIT_TOKEN_FILE", None)
    e.update(env or {})
    return subprocess.run([BIN, *args], input=stdin, capture_output=True, text=True, timeout=30, env=e)


def test_exec(server):
    p = cli("exec", "--url", server.url, "tp", "add", '{"a": 2, "b": 40}')
    assert p.returncode == EXIT_OK, p.stderr
    assert json.loads(p.stdout) == 42
    # Options may come first, arguments may come from stdin, the URL may end in '/'.
    p = cli("--url", server.url + "/", "exec", "tt", "echo", "-", stdin='{"value": [1, 2]}')
    assert p.returncode == EXIT_OK and json.loads(p.stdout) == [1, 2], p.stderr
    p = cli("exec", "--url", server.url, "tp", "noop")
    assert p.returncode == EXIT_OK and json.loads(p.stdout) is None


def test_exec_errors_map_to_exit_codes(server):
    p = cli("exec", "--url", server.url, "tp", "fail", '{"message": "remote boom"}')
    assert p.returncode == EXIT_PYTHON
    assert "python error (SP_EPYTHON)" in p.stderr and "ValueError: remote boom" in p.stderr
    assert "Traceback" in p.stderr and p.stdout == ""
    p = cli("exec", "--url", server.url, "nope", "add", "{}")
    assert p.returncode == EXIT_INVALID and "SP_ENOPOOL" in p.stderr
    p = cli("exec", "--url", server.url, "tp", "add", '{"a": "x", "b": 1}')
    assert p.returncode == EXIT_INVALID and "SP_EBADARGS" in p.stderr
    p = cli("exec", "--url", server.url, "tp", "add", "{nope")
    assert p.returncode == EXIT_INVALID and "SP_EBADJSON" in p.stderr
    p = cli("exec", "--url", server.url, "--timeout", "150", "tt", "sleep", '{"seconds": 0.6}')
    assert p.returncode == EXIT_TIMEOUT and "SP_ETIMEOUT" in p.stderr


def test_tools_stats_pools(server):
    p = cli("tools", "--url", server.url, "tp")
    assert p.returncode == EXIT_OK, p.stderr
    assert "add" in {t["name"] for t in json.loads(p.stdout)}
    p = cli("tools", "--url", server.url)
    assert p.returncode == EXIT_OK
    assert set(json.loads(p.stdout)) == {"tp", "tt", "sat", "qt", "crash", "racy", "checked"}
    p = cli("stats", "--url", server.url, "tt")
    assert p.returncode == EXIT_OK and json.loads(p.stdout)["name"] == "tt"
    p = cli("stats", "--url", server.url)
    assert p.returncode == EXIT_OK and len(json.loads(p.stdout)["pools"]) == 7
    p = cli("pools", "--url", server.url)
    assert p.returncode == EXIT_OK and json.loads(p.stdout) == ["tp", "tt", "sat", "qt", "crash", "racy", "checked"]
    # Like the local command, stats includes the thread-safety checker's report.
    p = cli("stats", "--url", server.url, "crash")
    assert p.returncode == EXIT_OK and "thread_safety" in json.loads(p.stdout)
    p = cli("stats", "--url", server.url, "nope")
    assert p.returncode == EXIT_INVALID and "SP_ENOPOOL" in p.stderr


def test_unreachable_server_and_bad_urls(server):
    # A port nobody listens on: bind one, note it, close it.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = cli("exec", "--url", f"http://127.0.0.1:{port}", "tp", "noop")
    assert p.returncode == EXIT_CONFIG and "cannot reach" in p.stderr
    p = cli("pools", "--url", "ftp://example")
    assert p.returncode == EXIT_USAGE and "http://" in p.stderr
    p = cli("exec", "--url", server.url, "tp")
    assert p.returncode == EXIT_USAGE


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("rauth")
    (d / "token").write_text("remote-token")
    os.chmod(d / "token", 0o600)
    s = Server(d, "pools:\n" + pool_yaml("tp"), "--token-file", str(d / "token"))
    yield s
    assert s.stop() == 0


def test_token_from_the_environment(token_server):
    p = cli("exec", "--url", token_server.url, "tp", "add", '{"a": 1, "b": 1}')
    assert p.returncode == EXIT_CONFIG and "UNAUTHORIZED" in p.stderr and "401" in p.stderr
    p = cli("exec", "--url", token_server.url, "tp", "add", '{"a": 1, "b": 1}',
            env={"SNAKEPIT_TOKEN": "remote-token"})
    assert p.returncode == EXIT_OK and json.loads(p.stdout) == 2, p.stderr
    p = cli("pools", "--url", token_server.url,
            env={"SNAKEPIT_TOKEN_FILE": str(token_server.tmp / "token")})
    assert p.returncode == EXIT_OK and json.loads(p.stdout) == ["tp"], p.stderr


def test_snakepit_url_makes_the_commands_talk_to_the_server(server):
    """With SNAKEPIT_URL set, stats shows the server's live figures instead of a
    freshly started pool's zeros."""
    assert server.call("tp", "noop")[0] == 200
    p = cli("stats", "tp", env={"SNAKEPIT_URL": server.url})
    assert p.returncode == EXIT_OK, p.stderr
    assert json.loads(p.stdout)["calls"]["ok"] >= 1
    p = cli("pools", env={"SNAKEPIT_URL": server.url})
    assert p.returncode == EXIT_OK and json.loads(p.stdout) == ["tp", "tt", "sat", "qt", "crash", "racy", "checked"]
    # -c FILE still starts pools of its own, whatever SNAKEPIT_URL says.
    p = cli("pools", "-c", str(server.cfg), env={"SNAKEPIT_URL": "http://127.0.0.1:1"})
    assert p.returncode == EXIT_OK and json.loads(p.stdout)[0] == "tp"


def test_top_refreshes_the_table(server):
    server.call("tp", "noop")
    p = cli("top", "--url", server.url, "-n", "2", "--interval", "0.2")
    assert p.returncode == EXIT_OK, p.stderr
    assert p.stdout.count("snakepit top - " + server.url) == 2
    assert "calls/s" in p.stdout and "POOL" in p.stdout
    assert any(line.split()[:2] == ["tp", "process"] for line in p.stdout.splitlines())
    p = cli("top", "--url", server.url, "--interval", "0")
    assert p.returncode == EXIT_USAGE


def test_serve_one_pool_from_flags(tmp_path):
    """The seed's one-command threaded server: no configuration file."""
    from conftest import ADAPTERS
    s = Server(tmp_path, None, "--adapter", "testing_adapter.TestingAdapter", "--python-path",
               ADAPTERS, "--profile", "thread", "--workers", "1", "--threads", "3",
               "--thread-safety-check")
    try:
        st = s.get_json("/v1/pools/default")
        assert (st["profile"], st["pool_size"], st["threads_per_worker"]) == ("thread", 1, 3)
        status, _, body = s.call("default", "add", {"a": 1, "b": 2})
        assert status == 200 and json.loads(body) == 3
    finally:
        assert s.stop() == 0, s.stderr()


def test_exec_stream(server):
    """--stream against a server prints each chunk of its NDJSON stream as it
    arrives (timestamps read while the command runs), then exits 0."""
    e = dict(os.environ)
    e.pop("SNAKEPIT_TOKEN", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([BIN, "exec", "--url", server.url, "--stream", "tt", "count",
                             '{"n": 3, "delay": 0.5}'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    lines = [(time.monotonic() - t0, line) for line in proc.stdout]
    proc.wait(timeout=30)
    end = time.monotonic() - t0
    assert proc.returncode == EXIT_OK, proc.stderr.read()
    assert [json.loads(l) for _, l in lines] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert lines[-1][0] - lines[0][0] > 0.6 and lines[0][0] < end - 0.6, lines


def test_exec_stream_errors(server):
    # An error after chunks: the chunks stay on stdout, the error maps to its exit code.
    p = cli("exec", "--url", server.url, "--stream", "tp", "stream_then_fail", '{"n": 2}')
    assert p.returncode == EXIT_PYTHON, p.stderr
    assert p.stdout.splitlines() == ["0", "1"]
    assert "failed after 2 chunks" in p.stderr and "ValueError" in p.stderr
    # Refused before the stream starts: an ordinary error reply.
    p = cli("exec", "--url", server.url, "--stream", "tp", "nope")
    assert p.returncode == EXIT_INVALID and "SP_ENOTOOL" in p.stderr and p.stdout == ""
    # The deadline covers the whole stream.
    p = cli("exec", "--url", server.url, "--stream", "--timeout", "300", "tt", "count",
            '{"n": 50, "delay": 0.1}')
    assert p.returncode == EXIT_TIMEOUT and "SP_ETIMEOUT" in p.stderr, p.stderr
    assert 0 < len(p.stdout.splitlines()) < 50
    # A plain tool streams as one chunk.
    p = cli("exec", "--url", server.url, "--stream", "tp", "add", '{"a": 1, "b": 2}')
    assert p.returncode == EXIT_OK and p.stdout == "3\n", p.stderr
