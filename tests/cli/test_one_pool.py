"""The command line as a newcomer uses it: one pool from flags (--adapter,
--profile, --workers, --threads ...) instead of a YAML file, stats as a table
on a terminal, results printed with Python's own numbers, and the messages for
a method that lacks @tool and for adapter_args nobody receives.
"""

import json

from test_cli import (ADAPTERS, EXIT_INVALID, EXIT_OK, EXIT_USAGE, needs_numpy, ok_json, run,
                      run_on_terminal)

ONE = ("--adapter", "testing_adapter.TestingAdapter", "--python-path", ADAPTERS)


def test_adapter_flags_define_one_pool():
    st = ok_json(run("stats", "--json", *ONE, "--profile", "thread", "--workers", "1",
                     "--threads", "3", "--thread-safety-check", "default"))
    assert (st["name"], st["profile"], st["pool_size"], st["threads_per_worker"]) == \
        ("default", "thread", 1, 3)
    assert "thread_safety" in st  # --thread-safety-check turned the checker on
    # One call count per worker, the live one (calls_done lagged behind until a ping).
    assert all("calls_done" not in w and "requests" in w for w in st["workers"])
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
                        ((*ONE, "--profile", "fibre", "pools"), "thread, process or auto"),
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


def test_forked_workers_say_which_pool_and_worker_they_are(tmp_path):
    """ps shows a forked worker by its pool and id, not by its fork server's
    command line."""
    (tmp_path / "title.py").write_text(
        "from snakepit_bridge import BaseAdapter, tool\n"
        "class T(BaseAdapter):\n"
        "    @tool(description='the process title as ps sees it')\n"
        "    def title(self):\n"
        "        cmdline = open('/proc/self/cmdline', 'rb').read()\n"
        "        comm = open('/proc/self/comm').read().strip()\n"
        "        return {'cmdline': cmdline.rstrip(b'\\0').decode(), 'comm': comm}\n")
    res = ok_json(run("exec", "--adapter", "title.T", "--python-path", str(tmp_path),
                      "--name", "models", "--workers", "1", "models", "title"))
    assert res["cmdline"] == "snakepit-worker: pool models worker w1 (process, 1 thread) title.T"
    assert "--fork-server" not in res["cmdline"]
    assert res["comm"] == "sp-models-w1"


def test_example_config_shows_every_key():
    """examples/pools.yaml says it shows every key a pool accepts: each key of the
    loader's table (src/core/config_keys.c) appears in it, and the file loads."""
    import re
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    keys = re.findall(r'\[KEY_[A-Z_]+\] = \{"([a-z_]+)"', (repo / "src/core/config_keys.c").read_text())
    assert len(keys) > 20
    example = (repo / "examples/pools.yaml").read_text()
    missing = [k for k in keys if not re.search(rf"^\s*#?\s*-?\s*{k}:", example, re.M)]
    assert missing == []
    assert ok_json(run("pools", "-c", str(repo / "examples/pools.yaml"))) == ["hpc_pool", "default"]


MODEL = ("--adapter", "model_adapter.ModelAdapter", "--python-path", ADAPTERS,
         "--adapter-arg", "32", "--workers", "3")


@needs_numpy    # the model is NumPy weights
def test_preload_flag_shares_the_model():
    st = ok_json(run("stats", "--json", *MODEL, "--preload", "default"))
    assert st["preload"] == "on"
    for w in st["workers"]:
        # The 32 MiB model is resident in every worker but owned by none.
        assert w["rss_kb"] > 32 * 1024 and 0 <= w["uss_kb"] < 8 * 1024, w
        assert w["pss_kb"] < w["rss_kb"]
    alone = ok_json(run("stats", "--json", *MODEL, "default"))
    assert alone["preload"] == "off"
    assert all(w["uss_kb"] > 32 * 1024 for w in alone["workers"])
    assert st["memory"]["pss_kb"] * 3 < alone["memory"]["pss_kb"] * 2
    code, text = run_on_terminal("stats", *MODEL, "--preload")
    assert code == EXIT_OK
    assert "preload: on" in text and "uss" in text, text
    proc = run("--preload", "pools")
    assert proc.returncode == EXIT_USAGE and "--adapter" in proc.stderr


def test_workers_range_sizes_itself():
    st = ok_json(run("stats", "--json", *ONE, "--workers", "1..3", "default"))
    assert (st["min_workers"], st["max_workers"], st["pool_size"], st["workers_current"]) == \
        (1, 3, 1, 1)
    code, text = run_on_terminal("stats", *ONE, "--workers", "1..3")
    assert code == EXIT_OK and "scaling: 1..3 workers" in text, text
    for bad, words in (("3..1", "minimum above its maximum"), ("1..300", "between 1 and 256")):
        proc = run(*ONE, "--workers", bad, "pools")
        assert proc.returncode == EXIT_USAGE and words in proc.stderr, proc.stderr


def test_profile_auto_chooses_and_says_why():
    proc = run("stats", "--json", *ONE, "--profile", "auto", "--workers", "1", "default")
    st = ok_json(proc)
    gil = st["gil_enabled"]
    assert st["profile_auto"] is True and st["profile_reason"]
    if gil:  # this interpreter has the GIL: processes are the only way to run in parallel
        assert (st["profile"], st["threads_per_worker"]) == ("process", 1)
        assert "GIL" in st["profile_reason"]
    assert "worker_profile auto chose " + st["profile"] in proc.stderr, proc.stderr
    code, text = run_on_terminal("stats", *ONE, "--profile", "auto", "--workers", "1")
    assert code == EXIT_OK and "worker_profile auto chose" in text, text
    # An adapter that cannot be imported: a startup error with its traceback.
    proc = run("pools", "--adapter", "broken_adapter.BrokenAdapter", "--python-path", ADAPTERS,
               "--profile", "auto")
    assert proc.returncode == 3, proc.stderr
    assert "worker_profile auto" in proc.stderr and "snakepit_nonexistent_module_xyz" in proc.stderr
