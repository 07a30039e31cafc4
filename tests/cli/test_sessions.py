"""Sessions on the command line: `exec --session ID [--session-mode MODE]`
against a running server (the session lives there between commands) and on
pools started for the command, `session end POOL ID`, and bad ids and modes
refused before anything starts."""

import json
import threading
import time

import pytest

from test_cli import (EXIT_INVALID, EXIT_OK, EXIT_USAGE, ok_json, pool_yaml, run, served,
                      write_config)

EXIT_BUSY = 7
ADAPTER = "session_adapter.SessionAdapter"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    d = tmp_path_factory.mktemp("sessions")
    return write_config(d / "pools.yaml", "pools:\n" + pool_yaml("sp", "process", adapter=ADAPTER)
                        + pool_yaml("st", "thread", adapter=ADAPTER, threads=2))


@pytest.fixture(scope="module")
def url(config, tmp_path_factory):
    """A `snakepit serve` of the config on a free loopback port."""
    yield from served(tmp_path_factory.mktemp("serve") / "serve.log", "-c", config)


@pytest.mark.parametrize("pool", ["sp", "st"])
def test_session_lives_on_the_server_between_commands(url, pool):
    sid = f"cli-{pool}"
    first = ok_json(run("--url", url, "exec", "--session", sid, pool, "add", '{"x": 2}'))
    second = ok_json(run("--url", url, "exec", pool, "add", '{"x": 3}', "--session", sid,
                         "--session-mode", "strict"))
    assert first["session_id"] == sid and (first["total"], second["total"]) == (2, 5)
    assert first["pid"] == second["pid"]
    ended = ok_json(run("--url", url, "session", "end", pool, sid))
    assert ended == {"pool": pool, "session": sid, "ended": True}
    assert ok_json(run("--url", url, "exec", "--session", sid, pool, "peek"))["total"] == 0


def test_strict_fail_fast_at_a_busy_worker_exits_busy(url):
    sid = "cli-busy"
    ok_json(run("--url", url, "exec", "--session", sid, "sp", "add"))
    holder = threading.Thread(target=run, args=("--url", url, "exec", "--session", sid, "sp",
                                                "hold", '{"seconds": 2}'))
    holder.start()
    time.sleep(0.5)
    proc = run("--url", url, "exec", "--session", sid, "--session-mode", "strict_fail_fast",
               "sp", "peek")
    holder.join()
    assert proc.returncode == EXIT_BUSY, proc.stderr
    assert "SP_ESESSIONBUSY" in proc.stderr and f"session '{sid}'" in proc.stderr


def test_local_exec_runs_in_the_session(config):
    # Pools started for the command: the session lasts this command only.
    res = ok_json(run("-c", config, "exec", "--session", "one-shot", "sp", "add", '{"x": 4}'))
    assert res["session_id"] == "one-shot" and res["total"] == 4
    res = ok_json(run("-c", config, "exec", "--session", "one-shot", "--session-mode",
                      "strict_fail_fast", "st", "peek"))
    assert res["total"] == 0
    proc = run("-c", config, "session", "end", "sp", "one-shot")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert json.loads(proc.stdout)["ended"] is True


@pytest.mark.parametrize("args,why", [
    (("--session", "a\nb"), "--session: session id has a control character (U+000A) at byte 1"),
    (("--session", ""), "--session: session id is empty"),
    (("--session", "x" * 129), "--session: session id is longer than 128 bytes"),
    # A str with a surrogate escape reaches the program as the raw byte 0xff.
    (("--session", "caf\udcff"), "--session: session id is not valid UTF-8 (byte 3)"),
    (("--session", "s", "--session-mode", "sticky"),
     "--session-mode: unknown session mode 'sticky'"),
    (("--session-mode", "strict"), "--session-mode needs --session ID"),
])
def test_bad_session_options_are_usage_errors(config, args, why):
    t0 = time.monotonic()
    proc = run("-c", config, "exec", *args, "sp", "peek")
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert why in proc.stderr, proc.stderr
    assert time.monotonic() - t0 < 5  # refused before any worker starts


def test_bad_session_end_arguments(config, url):
    proc = run("-c", config, "session", "end", "sp")
    assert proc.returncode == EXIT_USAGE and "session end POOL ID" in proc.stderr
    proc = run("--url", url, "session", "end", "sp", "a\tb")
    assert proc.returncode == EXIT_USAGE and "control character" in proc.stderr
    proc = run("--url", url, "session", "end", "nope", "x")
    assert proc.returncode == EXIT_INVALID and "unknown pool 'nope'" in proc.stderr
    proc = run("-c", config, "stats", "--session", "s")
    assert proc.returncode == EXIT_USAGE and "options of exec" in proc.stderr
