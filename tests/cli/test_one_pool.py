"""The command line as a newcomer uses it: one pool from flags (--adapter,
--profile, --workers, --threads ...) instead of a YAML file, stats as a table
on a terminal, results printed with Python's own numbers, and the messages for
a method that lacks @tool and for adapter_args nobody receives.
"""

import json
import os
import pty
import subprocess

from test_cli import ADAPTERS, BIN, EXIT_INVALID, EXIT_OK, EXIT_USAGE, ok_json, run

ONE = ("--adapter", "testing_adapter.TestingAdapter", "--python-path", ADAPTERS)


def test_adapter_flags_define_one_pool():
    st = ok_json(run("stats", "--json", *ONE, "--profile", "thread", "--workers", "1",
                     "--threads", "3", "--thread-safety-check", "default"))
    assert (st["name"], st["profile"], st["pool_size"], st["threads_per_worker"]) == \
        ("default", "thread", 1, 3)
    assert "thread_safety" in st  # --thread-safety-check turned the checker on
    res = ok_json(run("exec", *ONE, "--name", "models", "--workers", "1", "models", "add",
                      '{"a": 2, "b": 3}'))
    assert res == 5


def test_adapter_flag_errors_are_usage_errors(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("pools:\n  - name: p\n")
    for args, words in ((("--workers", "2", "pools"), "--adapter"),
                        (("-c", str(cfg), *ONE, "pools"), "alternatives"),
                        (("--url", "http://127.0.0.1:1", "-c", str(cfg), "pools"), "alternatives"),
                        ((*ONE, "--profile", "process", "--threads", "4", "pools"), "thread"),
                        ((*ONE, "--profile", "fibre", "pools"), "thread or process"),
                        ((*ONE, "--workers", "0", "pools"), "--workers")):
        proc = run(*args)
        assert proc.returncode == EXIT_USAGE, (args, proc.stderr)
        assert words in proc.stderr, (args, proc.stderr)


def test_method_without_tool_says_it_needs_tool(tmp_path):
    (tmp_path / "untooled.py").write_text(
        "from snakepit_bridge import BaseAdapter, tool\n"
        "class A(BaseAdapter):\n"
        "    @tool(description='x')\n"
        "    def ok(self):\n        return 1\n"
        "    def get_thread_stats(self):\n        return 2\n")
    base = ("--adapter", "untooled.A", "--python-path", str(tmp_path), "--workers", "1")
    proc = run("exec", *base, "default", "get_thread_stats")
    assert proc.returncode == EXIT_INVALID
    assert "get_thread_stats" in proc.stderr and "@tool" in proc.stderr, proc.stderr
    proc = run("exec", *base, "default", "nothing_like_it")
    assert proc.returncode == EXIT_INVALID and "unknown tool" in proc.stderr
    assert "@tool" not in proc.stderr


def test_ignored_adapter_args_warn(tmp_path):
    proc = run("exec", *ONE, "--workers", "1", "--adapter-arg=--mode", "--adapter-arg", "threaded",
               "default", "noop")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "adapter_args ['--mode', 'threaded'] ignored" in proc.stderr, proc.stderr


def test_floats_print_as_python_wrote_them():
    proc = run("exec", *ONE, "--workers", "1", "default", "echo",
               '{"value": [0.1, 1e-07, 0.30000000000000004, 12345678.9]}')
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "0.10000000000000001" not in proc.stdout
    for text in ("0.1", "1e-07", "0.30000000000000004", "12345678.9"):
        assert text in proc.stdout
    assert json.loads(proc.stdout) == [0.1, 1e-07, 0.30000000000000004, 12345678.9]


def run_on_terminal(*args):
    """Runs the CLI with stdout on a pseudo-terminal; returns (rc, output)."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([BIN, *args], stdout=slave, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(30), b"".join(chunks).decode()


def test_stats_is_a_table_on_a_terminal_and_json_otherwise():
    rc, out = run_on_terminal("-q", *ONE, "--workers", "1", "stats")
    assert rc == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["POOL", "PROFILE", "WORKERS"], out
    assert lines[1].split()[:3] == ["default", "process", "1/1"], out
    assert "pid" in lines[2] and "ready" in lines[2], out
    rc, out = run_on_terminal("-q", *ONE, "--workers", "1", "stats", "--json")
    assert rc == EXIT_OK and json.loads(out)["pools"][0]["name"] == "default"
    piped = ok_json(run("-q", *ONE, "--workers", "1", "stats"))
    assert piped["pools"][0]["name"] == "default"
