"""End-to-end tests of the `snakepit` command line.

Run with Debian's interpreter:

    SNAKEPIT_BIN=build/snakepit SP_TEST_ADAPTERS=tests/adapters \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/cli

Every test runs the real binary (which starts real worker processes), with a
timeout on each run, and checks the exit code, the JSON on stdout and the text
on stderr. Configs written by the tests use pool_size 1 to keep startup short.
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SNAKEPIT_BIN") or str(REPO / "build" / "snakepit")
ADAPTERS = os.environ.get("SP_TEST_ADAPTERS") or str(REPO / "tests" / "adapters")

# Exit codes of src/cli/main.c.
EXIT_OK, EXIT_PYTHON, EXIT_USAGE, EXIT_CONFIG, EXIT_INVALID, EXIT_TIMEOUT, EXIT_WORKER = range(7)

RUN_TIMEOUT = 30  # seconds, per CLI run

# The suite runs under the Python the binary embeds (CMake's PYTHON): what this
# interpreter can import, the workers can. No NumPy exists for a free-threaded
# 3.14t on Debian 12.
needs_numpy = pytest.mark.skipif(
    importlib.util.find_spec("numpy") is None,
    reason=f"NumPy is not installed for Python {sys.version.split()[0]} ({sys.executable})")

POOL_SOURCES = ("-c", "--config", "--url", "--adapter", "--local")


def run(*args, stdin=None, timeout=RUN_TIMEOUT, env=None):
    """Runs the CLI (with `env` added to the environment); returns the
    CompletedProcess (text mode) plus .elapsed seconds. Commands that would use
    the built-in pools get --local, so a server someone runs on the default
    address cannot answer in their place."""
    if args and args[0] in ("exec", "tools", "stats", "pools") and not any(
            a in POOL_SOURCES for a in args):
        args = ("--local",) + args
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    env.pop("SNAKEPIT_URL", None)
    t0 = time.monotonic()
    proc = subprocess.run([BIN, *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=timeout, env=env)
    proc.elapsed = time.monotonic() - t0
    return proc


def run_on_terminal(*args, stream="stdout", timeout=RUN_TIMEOUT):
    """Runs the CLI with stdout or stderr on a pseudo-terminal (the other one is
    discarded); returns (exit code, what the terminal got)."""
    import pty
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("SNAKEPIT_URL", None)
    streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: slave}
    proc = subprocess.Popen([BIN, *args], stdin=subprocess.DEVNULL, env=env, **streams)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout), b"".join(chunks).decode()


def ok_json(proc):
    """Asserts a successful run with empty-of-errors stderr and returns the parsed stdout."""
    assert proc.returncode == EXIT_OK, f"rc={proc.returncode}\nstderr:\n{proc.stderr}"
    assert "error" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def served(log, *args):
    """A `snakepit serve *args` on a free loopback port, its stderr in the file
    log: yields its URL, then stops it and checks it exited cleanly (a
    generator for module fixtures)."""
    with open(log, "w") as err:
        proc = subprocess.Popen([BIN, "serve", *args, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.DEVNULL, stderr=err)
    found = None
    deadline = time.monotonic() + 30
    while found is None and time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"listening on (http://[0-9.]+:\d+)", log.read_text())
        time.sleep(0.05)
    assert found, log.read_text()
    yield found.group(1)
    proc.terminate()
    assert proc.wait(30) == 0, log.read_text()


def write_config(path, body):
    path.write_text(body)
    return str(path)


def pool_yaml(name, profile, adapter="testing_adapter.TestingAdapter", threads=None, extra=""):
    lines = [f"  - name: {name}",
             f"    worker_profile: {profile}",
             "    pool_size: 1",
             f"    adapter: {adapter}",
             f"    python_path: [{json.dumps(ADAPTERS)}]",
             "    timeout: 20s"]
    if threads is not None:
        lines.append(f"    threads_per_worker: {threads}")
    if extra:
        lines.extend("    " + e for e in extra.strip().splitlines())
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def cfg(tmp_path_factory):
    """A config with one process pool `tp` and one thread pool `tt` (1 worker x 2 threads)."""
    d = tmp_path_factory.mktemp("cfg")
    body = "pools:\n" + pool_yaml("tp", "process") + pool_yaml("tt", "thread", threads=2)
    return write_config(d / "pools.yaml", body)


def test_binary_exists():
    assert os.access(BIN, os.X_OK), f"SNAKEPIT_BIN={BIN} is not an executable"
    assert os.path.isdir(ADAPTERS) and os.path.isfile(os.path.join(ADAPTERS, "testing_adapter.py"))


# ---- exec: success paths --------------------------------------------------------------------


@needs_numpy
def test_exec_builtin_hpc_pool_compute_intensive():
    res = ok_json(run("exec", "hpc_pool", "compute_intensive", '{"data":[1,2,3]}'))
    assert res["sum"] == 6.0
    assert res["count"] == 3
    assert res["sum_of_squares"] == 14.0
    assert res["mean"] == 2.0
    assert (res["min"], res["max"]) == (1.0, 3.0)
    assert res["thread"].startswith("snakepit-w")


def test_builtin_pools_work_without_numpy(tmp_path):
    # A NumPy that cannot be imported (as on a free-threaded 3.14t): the
    # showcase adapter loads, the NumPy tools fail alone and say why.
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text("raise ImportError('no NumPy here')\n")
    env = {"PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    res = ok_json(run("exec", "hpc_pool", "ping", env=env))
    assert res["status"] == "ok"
    res = ok_json(run("exec", "default", "stress_test", '{"iterations": 10}', env=env))
    assert res["result"] == sum(i * i for i in range(10))
    proc = run("exec", "hpc_pool", "compute_intensive", '{"data": [1]}', env=env)
    assert proc.returncode == EXIT_PYTHON, proc.stderr
    assert "MissingDependency: tool 'compute_intensive' needs 'numpy'" in proc.stderr
    assert "no NumPy here" in proc.stderr


def test_exec_builtin_default_process_pool_echo():
    payload = {"x": [1, "two", None], "y": {"z": 3.5}}
    res = ok_json(run("exec", "default", "echo", json.dumps(payload)))
    assert res == payload


@pytest.mark.parametrize("pool", ["tp", "tt"])
def test_exec_with_config(cfg, pool):
    res = ok_json(run("-c", cfg, "exec", pool, "add", '{"a": 40, "b": 2}'))
    assert res == 42


def test_exec_thread_pool_runs_on_worker_thread(cfg):
    name = ok_json(run("-c", cfg, "exec", "tt", "thread_name"))
    assert isinstance(name, str) and name.startswith("snakepit-w1-t"), name


def test_exec_without_json_means_empty_object(cfg):
    proc = run("-c", cfg, "exec", "tp", "noop")
    assert ok_json(proc) is None
    assert proc.stdout.strip() == "null"


def test_options_after_the_command(cfg):
    res = ok_json(run("exec", "-c", cfg, "-t", "5000", "tp", "add", '{"a": 1, "b": 2}'))
    assert res == 3


def test_exec_args_from_stdin(cfg):
    res = ok_json(run("-c", cfg, "exec", "tp", "add", "-", stdin='{"a": 5,\n "b": 6}\n'))
    assert res == 11


def test_exec_args_from_stdin_invalid(cfg):
    proc = run("-c", cfg, "exec", "tp", "add", "-", stdin="")
    assert proc.returncode == EXIT_INVALID
    assert "SP_EBADJSON" in proc.stderr
    assert proc.stdout == ""


# ---- tools, stats, pools, help ------------------------------------------------------------

SHOWCASE_TOOLS = {"ping", "compute_intensive", "matrix_multiply", "batch_process",
                  "stress_test", "get_thread_stats", "sleep", "echo", "count_up",
                  "get_adapter_stats", "clear_caches", "get_history", "chat", "relay", "ask_host"}


def test_tools_one_pool():
    tools = ok_json(run("tools", "hpc_pool"))
    assert isinstance(tools, list)
    by_name = {t["name"]: t for t in tools}
    assert set(by_name) == SHOWCASE_TOOLS
    for t in tools:
        assert isinstance(t["description"], str) and t["description"], t
        assert isinstance(t["parameters"], list), t
    assert "NumPy" in by_name["compute_intensive"]["description"]
    data, iterations = by_name["compute_intensive"]["parameters"]
    assert data == {"name": "data", "type": "list", "required": True}
    assert iterations == {"name": "iterations", "type": "int", "required": False, "default": 0}
    assert by_name["echo"]["parameters"] == []
    sleep_params = {p["name"]: p for p in by_name["sleep"]["parameters"]}
    assert sleep_params["seconds"]["required"] is True


def test_tools_all_pools():
    allt = ok_json(run("tools"))
    assert set(allt) == {"hpc_pool", "default"}
    for pool, tools in allt.items():
        assert {t["name"] for t in tools} == SHOWCASE_TOOLS, pool


def test_tools_all_pools_with_config(cfg):
    allt = ok_json(run("-c", cfg, "tools"))
    assert set(allt) == {"tp", "tt"}
    add = next(t for t in allt["tp"] if t["name"] == "add")
    assert add["description"] == "Add two integers"
    assert [(p["name"], p["type"], p["required"]) for p in add["parameters"]] == [
        ("a", "int", True), ("b", "int", True)]


def test_stats_hpc_pool():
    st = ok_json(run("stats", "hpc_pool"))
    assert st["name"] == "hpc_pool"
    assert st["profile"] == "thread"
    assert (st["pool_size"], st["threads_per_worker"], st["capacity"]) == (2, 4, 8)
    assert st["ready_workers"] == 2
    assert len(st["workers"]) == 2
    assert {w["id"] for w in st["workers"]} == {"w1", "w2"}
    for w in st["workers"]:
        assert w["pid"] > 0 and w["state"] == "ready" and w["capacity"] == 4
    assert st["calls"]["total"] == 0


def test_stats_all_pools_with_config(cfg):
    st = ok_json(run("-c", cfg, "stats"))
    pools = {p["name"]: p for p in st["pools"]}
    assert set(pools) == {"tp", "tt"}
    assert pools["tp"]["profile"] == "process" and pools["tp"]["capacity"] == 1
    assert pools["tt"]["profile"] == "thread" and pools["tt"]["capacity"] == 2
    assert len(pools["tp"]["workers"]) == 1


def test_pools_builtin():
    assert ok_json(run("pools")) == ["hpc_pool", "default"]


def test_pools_with_config(cfg):
    assert ok_json(run("-c", cfg, "pools")) == ["tp", "tt"]


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"]])
def test_help(args):
    proc = run(*args)
    assert proc.returncode == EXIT_OK
    assert proc.stdout.startswith("usage: snakepit")
    for word in ("exec", "tools", "stats", "pools", "--timeout", "Exit codes"):
        assert word in proc.stdout
    assert proc.stderr == ""


def test_version():
    proc = run("version")
    assert proc.returncode == EXIT_OK
    assert re.fullmatch(r"snakepit \d+\.\d+\.\d+\n", proc.stdout), proc.stdout


# ---- usage errors (exit 2) -----------------------------------------------------------------


def test_no_command():
    proc = run()
    assert proc.returncode == EXIT_USAGE
    assert "usage: snakepit" in proc.stderr
    assert proc.stdout == ""


def test_unknown_command():
    proc = run("frobnicate")
    assert proc.returncode == EXIT_USAGE
    assert "unknown command 'frobnicate'" in proc.stderr
    assert proc.stdout == ""


def test_unknown_option():
    proc = run("--bogus", "pools")
    assert proc.returncode == EXIT_USAGE
    assert "bogus" in proc.stderr


@pytest.mark.parametrize("args", [["exec"], ["exec", "hpc_pool"],
                                  ["exec", "hpc_pool", "ping", "{}", "extra"]])
def test_exec_wrong_arg_count(args):
    proc = run(*args)
    assert proc.returncode == EXIT_USAGE
    assert "exec needs POOL TOOL [JSON]" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("value", ["abc", "0", "-5", "10ms"])
def test_bad_timeout(value):
    proc = run("--timeout", value, "exec", "hpc_pool", "ping")
    assert proc.returncode == EXIT_USAGE
    assert "--timeout" in proc.stderr and f"'{value}'" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("value", ["abc", "-5"])
def test_bad_timeout_after_command(cfg, value):
    # Options may follow the command; they must be validated the same way.
    proc = run("-c", cfg, "exec", "-t", value, "tp", "noop")
    assert proc.returncode == EXIT_USAGE
    assert "--timeout" in proc.stderr and f"'{value}'" in proc.stderr
    assert proc.stdout == ""


def test_tools_too_many_args():
    proc = run("tools", "a", "b")
    assert proc.returncode == EXIT_USAGE
    assert "at most one POOL" in proc.stderr


# ---- invalid calls (exit 4) ----------------------------------------------------------------


def test_unknown_pool():
    proc = run("exec", "no_such_pool", "ping")
    assert proc.returncode == EXIT_INVALID
    assert "no_such_pool" in proc.stderr
    assert "SP_ENOPOOL" in proc.stderr
    assert "hpc_pool" in proc.stderr  # lists the pools that do exist
    assert proc.stdout == ""


@pytest.mark.parametrize("cmd", ["tools", "stats"])
def test_unknown_pool_tools_stats(cmd):
    proc = run(cmd, "no_such_pool")
    assert proc.returncode == EXIT_INVALID
    assert "unknown pool 'no_such_pool'" in proc.stderr


def test_unknown_tool(cfg):
    proc = run("-c", cfg, "exec", "tp", "no_such_tool")
    assert proc.returncode == EXIT_INVALID
    assert "SP_ENOTOOL" in proc.stderr
    assert "no_such_tool" in proc.stderr
    assert proc.stdout == ""


def test_invalid_json(cfg):
    proc = run("-c", cfg, "exec", "tp", "add", '{"a": 1,\n "b": }')
    assert proc.returncode == EXIT_INVALID
    assert "SP_EBADJSON" in proc.stderr
    m = re.search(r"line (\d+), column (\d+)", proc.stderr)
    assert m, proc.stderr
    assert int(m.group(1)) == 2
    assert proc.stdout == ""


@pytest.mark.parametrize("text,kind", [("[1, 2]", "array"), ("42", "number"), ('"s"', "string")])
def test_non_object_json(cfg, text, kind):
    proc = run("-c", cfg, "exec", "tp", "echo", text)
    assert proc.returncode == EXIT_INVALID
    assert "must be a JSON object" in proc.stderr
    assert kind in proc.stderr
    assert proc.stdout == ""


def test_missing_argument(cfg):
    proc = run("-c", cfg, "exec", "tp", "add", '{"a": 1}')
    assert proc.returncode == EXIT_INVALID
    assert "SP_EBADARGS" in proc.stderr
    assert "missing required argument 'b'" in proc.stderr


def test_wrong_argument_type_and_unknown_argument(cfg):
    proc = run("-c", cfg, "exec", "tp", "add", '{"a": "x", "b": 2}')
    assert proc.returncode == EXIT_INVALID
    assert "argument 'a'" in proc.stderr and "int" in proc.stderr
    proc = run("-c", cfg, "exec", "tp", "add", '{"a": 1, "b": 2, "c": 3}')
    assert proc.returncode == EXIT_INVALID
    assert "unknown argument 'c'" in proc.stderr


# ---- tool and worker failures ---------------------------------------------------------------


@pytest.mark.parametrize("pool", ["tp", "tt"])
def test_tool_raises(cfg, pool):
    proc = run("-c", cfg, "exec", pool, "fail", '{"message": "kaboom-42"}')
    assert proc.returncode == EXIT_PYTHON
    assert "ValueError" in proc.stderr and "kaboom-42" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "raise ValueError(message)" in proc.stderr
    assert "testing_adapter.py" in proc.stderr
    assert proc.stdout == ""


def test_tool_exits_worker(cfg):
    proc = run("-c", cfg, "exec", "tp", "exit_now", '{"code": 3}')
    assert proc.returncode == EXIT_WORKER
    assert "SP_ECRASHED" in proc.stderr
    assert "worker" in proc.stderr and "code 3" in proc.stderr
    assert proc.stdout == ""


def test_tool_segfaults_worker(cfg):
    proc = run("-c", cfg, "exec", "tp", "segfault")
    assert proc.returncode == EXIT_WORKER
    assert "worker" in proc.stderr and "signal 11" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("pool", ["tp", "tt"])
def test_timeout(cfg, pool):
    proc = run("-c", cfg, "--timeout", "300", "exec", pool, "sleep", '{"seconds": 1.5}')
    assert proc.returncode == EXIT_TIMEOUT
    assert "SP_ETIMEOUT" in proc.stderr and "timed out" in proc.stderr
    assert proc.stdout == ""
    assert proc.elapsed < 10


def test_timeout_kills_worker_after_cancel_grace(tmp_path):
    path = write_config(tmp_path / "cg.yaml",
                        "pools:\n" + pool_yaml("tp", "process", extra="cancel_grace: 200ms"))
    proc = run("-c", path, "--timeout", "300", "exec", "tp", "sleep", '{"seconds": 20}')
    assert proc.returncode == EXIT_TIMEOUT
    # 300 ms timeout + 200 ms grace + startup/stop: well under 3 s if the worker is killed.
    assert proc.elapsed < 3.0, f"took {proc.elapsed:.2f} s"


# ---- config and startup errors (exit 3) -----------------------------------------------------


def test_missing_config_file(tmp_path):
    missing = str(tmp_path / "nope" / "pools.yaml")
    proc = run("-c", missing, "pools")
    assert proc.returncode == EXIT_CONFIG
    assert missing in proc.stderr
    assert "No such file or directory" in proc.stderr
    assert proc.stdout == ""


def test_config_unknown_key(tmp_path):
    path = write_config(tmp_path / "typo.yaml",
                        "# comment line\n"
                        "pools:\n"
                        "  - name: typo\n"
                        "    worker_profile: thread\n"
                        "    pool_sise: 4\n")
    proc = run("-c", path, "pools")
    assert proc.returncode == EXIT_CONFIG
    assert f"{path}:5:" in proc.stderr
    assert "pool_sise" in proc.stderr
    assert "pool_size" in proc.stderr  # the suggestion
    assert proc.stdout == ""


def test_config_bad_value(tmp_path):
    path = write_config(tmp_path / "bad.yaml",
                        "pools:\n  - name: p\n    pool_size: 0\n")
    proc = run("-c", path, "pools")
    assert proc.returncode == EXIT_CONFIG
    assert f"{path}:3:" in proc.stderr and "pool_size" in proc.stderr


def test_adapter_import_fails(tmp_path):
    path = write_config(tmp_path / "broken.yaml",
                        "pools:\n" + pool_yaml("broken", "process",
                                               adapter="broken_adapter.BrokenAdapter"))
    proc = run("-c", path, "pools")
    assert proc.returncode == EXIT_CONFIG
    assert "SP_ESTARTUP" in proc.stderr
    assert "ModuleNotFoundError" in proc.stderr
    assert "snakepit_nonexistent_module_xyz" in proc.stderr
    assert "broken_adapter" in proc.stderr
    assert proc.stdout == ""


def test_adapter_class_missing(tmp_path):
    path = write_config(tmp_path / "nocls.yaml",
                        "pools:\n" + pool_yaml("p", "process",
                                               adapter="testing_adapter.NoSuchClass"))
    proc = run("-c", path, "pools")
    assert proc.returncode == EXIT_CONFIG
    assert "NoSuchClass" in proc.stderr
    assert proc.stdout == ""


# ---- worker output forwarding ---------------------------------------------------------------


def test_worker_stderr_is_forwarded_with_prefix(cfg):
    proc = run("-c", cfg, "exec", "tp", "write_stderr", '{"text": "marker-7f3a"}')
    assert ok_json(proc) == {"written": 11}
    assert re.search(r"^\[tp/w1 pid \d+\] marker-7f3a$", proc.stderr, re.M), proc.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_suppresses_worker_stderr(cfg, where):
    args = ["-q", "-c", cfg, "exec", "tp", "write_stderr", '{"text": "marker-7f3a"}']
    if where == "after":
        args = ["-c", cfg, "exec", "-q", "tp", "write_stderr", '{"text": "marker-7f3a"}']
    proc = run(*args)
    assert ok_json(proc) == {"written": 11}
    assert "marker-7f3a" not in proc.stderr
    assert "[tp/" not in proc.stderr


def test_quiet_still_reports_errors(cfg):
    proc = run("-q", "-c", cfg, "exec", "tp", "fail", '{"message": "loud"}')
    assert proc.returncode == EXIT_PYTHON
    assert "ValueError: loud" in proc.stderr


# ---- signals: the first SIGINT/SIGTERM drains, a second one exits at once ----------------------

SLOW_ADAPTER = """
import sys, time
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool


class SlowAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="Say 'call-started' on stderr, then sleep")
    def slow(self, seconds: float):
        print("call-started", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return {"slept": seconds}
"""


@pytest.fixture(scope="session")
def slow_cfg(tmp_path_factory):
    d = tmp_path_factory.mktemp("slow")
    (d / "slow_adapter.py").write_text(SLOW_ADAPTER)
    body = ("pools:\n  - name: sp\n    worker_profile: process\n    pool_size: 1\n"
            "    adapter: slow_adapter.SlowAdapter\n"
            f"    python_path: [{json.dumps(str(d))}]\n")
    return write_config(d / "slow.yaml", body)


def start_slow_call(slow_cfg, seconds):
    """Starts `exec sp slow` and returns (proc, worker pid, stderr lines) once the call runs."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([BIN, "-c", slow_cfg, "exec", "sp", "slow",
                             json.dumps({"seconds": seconds})],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    found = threading.Event()

    def reader():
        for line in proc.stderr:
            lines.append(line)
            if "call-started" in line:
                found.set()
        found.set()

    threading.Thread(target=reader, daemon=True).start()
    if not found.wait(RUN_TIMEOUT):
        proc.kill()
        pytest.fail("the call did not start")
    m = re.search(r"\[sp/w1 pid (\d+)\] call-started", "".join(lines))
    assert m, "".join(lines)
    return proc, int(m.group(1)), lines


def finish(proc, lines):
    """Waits (bounded) for the CLI to exit; returns (stdout, stderr)."""
    try:
        proc.wait(RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    chunks = []
    # A worker that kept the pipe open must not hang the test: read with a deadline.
    t = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    t.start()
    t.join(5)
    assert chunks, "stdout still open after the CLI exited (a worker kept it?)"
    time.sleep(0.05)  # let the reader thread take the last stderr lines
    return chunks[0], "".join(lines)


def process_gone(pid, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_call_in_flight(slow_cfg, sig):
    proc, pid, lines = start_slow_call(slow_cfg, 1.0)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = finish(proc, lines)
    assert proc.returncode == EXIT_OK, err
    assert json.loads(out) == {"slept": 1.0}
    assert "finishing calls in flight" in err
    assert time.monotonic() - t0 < 10
    assert process_gone(pid, 5), f"worker {pid} still alive"


def test_second_signal_exits_at_once(slow_cfg):
    proc, pid, lines = start_slow_call(slow_cfg, 20.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc, lines)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert time.monotonic() - t0 < 5
    assert out == ""
    assert "exiting now" in err
    # The worker goes down with the manager instead of sleeping on as an orphan.
    assert process_gone(pid, 5), f"worker {pid} outlived the CLI"


def test_worker_ignores_another_python_first_on_path(tmp_path):
    """A foreign interpreter first on PATH must not lend the embedded one its stdlib."""
    # The embedded Python's library folder name (python3.11, python3.14t).
    version = f"{sys.version_info[0]}.{sys.version_info[1]}{sys.abiflags}"
    fake = tmp_path / "otherpython"
    (fake / "bin").mkdir(parents=True)
    exe = fake / "bin" / "python3"
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)
    stdlib = fake / "lib" / f"python{version}"
    stdlib.mkdir(parents=True)
    (stdlib / "os.py").write_text("raise ImportError('wrong standard library')\n")
    env = dict(os.environ, PATH=f"{fake / 'bin'}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([BIN, "-q", "--local", "exec", "hpc_pool", "stress_test", '{"iterations": 3}'],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert json.loads(proc.stdout)["result"] == 5
