"""`snakepit check ADAPTER`, end to end: a racy adapter is flagged (attribute,
file:line, threads; exit 8), a correct one is clean (exit 0), unsafe libraries
are reported where they are imported, strict mode refuses an undeclared
adapter, a broken adapter exits 3 and bad usage 2. Also the thread-safety
report in `snakepit stats` for a pool with thread_safety_checks: true.

Adapters: tests/adapters/racy_adapter.py, racy_pandas_adapter.py,
correct_adapter.py. Run like tests/cli/test_cli.py (SNAKEPIT_BIN, SP_TEST_ADAPTERS).
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SNAKEPIT_BIN") or str(REPO / "build" / "snakepit")
ADAPTERS = os.environ.get("SP_TEST_ADAPTERS") or str(REPO / "tests" / "adapters")

EXIT_OK, EXIT_USAGE, EXIT_CONFIG, EXIT_FINDINGS, EXIT_INCOMPLETE = 0, 2, 3, 8, 9


def check(*args, timeout=60, cwd=None):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    t0 = time.monotonic()
    proc = subprocess.run([BIN, "check", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)
    proc.elapsed = time.monotonic() - t0
    return proc


def check_json(*args, rc):
    proc = check("--python-path", ADAPTERS, "--json", *args)
    assert proc.returncode == rc, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    rep = json.loads(proc.stdout)
    assert rep["exit_code"] == rc
    return rep


def marker_line(filename, marker):
    with open(os.path.join(ADAPTERS, filename), encoding="utf-8") as fh:
        (line,) = [i for i, text in enumerate(fh, 1) if marker in text]
    return line


def by_kind(rep, kind):
    return [f for f in rep["findings"] if f["kind"] == kind]


def test_racy_adapter_is_flagged():
    rep = check_json("racy_adapter.RacyAdapter", rc=EXIT_FINDINGS)
    assert rep["thread_safe"] is True and rep["profile"] == "thread"
    tools = {t["name"]: t for t in rep["tools"]}
    assert set(tools) == {"increment", "record", "get_counter"}      # not the built-in tool
    assert all(t["failed"] == 0 and t["calls"] == 128 for t in tools.values())
    assert tools["increment"]["peak_concurrency"] >= 2
    writes = {f["attribute"]: f for f in by_kind(rep, "unlocked_write")}
    assert set(writes) == {"counter", "history"}
    c = writes["counter"]
    assert c["file"].endswith("racy_adapter.py")
    assert c["line"] == marker_line("racy_adapter.py", "# RACE counter")
    assert (c["function"], c["tool"], c["write_kind"]) == ("RacyAdapter.increment", "increment", "write")
    assert c["thread"].startswith("snakepit-w1-t") and c["other_thread"].startswith("snakepit-w1-t")
    assert c["thread"] != c["other_thread"]
    h = writes["history"]
    assert (h["line"], h["operation"]) == (marker_line("racy_adapter.py", "# RACE history"), "append")
    assert rep["problems"] == 2 and rep["libraries"] == []


def test_gil_back_on_a_free_threaded_build_is_noted():
    # The adapter imports an extension module without free-threading support.
    ext = os.environ.get("SP_TEST_EXT_DIR") or str(REPO / "build" / "test-ext")
    proc = check("--python-path", ADAPTERS, "--python-path", ext, "--json",
                 "gil_user_adapter.GilUserAdapter")
    assert proc.returncode == EXIT_OK, proc.stderr
    rep = json.loads(proc.stdout)
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert rep["worker"]["free_threaded_build"] is free_threaded
    assert rep["worker"]["gil_enabled"] is True
    noted = [n for n in rep["notes"] if n.startswith("the GIL is on although this Python is free")]
    assert len(noted) == int(free_threaded), rep["notes"]


def test_racy_adapter_text_report():
    proc = check("--python-path", ADAPTERS, "racy_adapter.RacyAdapter")
    assert proc.returncode == EXIT_FINDINGS, proc.stderr
    out = proc.stdout
    line = marker_line("racy_adapter.py", "# RACE counter")
    assert "__thread_safe__ = True" in out
    assert (f"⚠️  THREAD SAFETY: Unlocked write to self.counter in RacyAdapter.increment at "
            f"{os.path.realpath(ADAPTERS)}/racy_adapter.py:{line}") in out
    assert "Unlocked in-place change self.history.append()" in out
    assert "Result: 2 problems found" in out
    assert proc.stderr == ""          # worker output only with -v


def test_correct_adapter_is_clean():
    rep = check_json("correct_adapter.CorrectAdapter", rc=EXIT_OK)
    assert rep["findings"] == [] and rep["problems"] == 0
    tools = {t["name"]: t for t in rep["tools"]}
    assert set(tools) == {"predict", "hit", "get_stats_snapshot"}
    assert tools["predict"]["peak_concurrency"] >= 2 and tools["hit"]["peak_concurrency"] >= 2
    assert all(t["failed"] == 0 for t in tools.values())
    proc = check("--python-path", ADAPTERS, "correct_adapter.CorrectAdapter")
    assert proc.returncode == EXIT_OK and "Result: no thread-safety problems found" in proc.stdout


def test_tools_that_could_not_run_make_the_check_incomplete(tmp_path):
    # The generated argument (factor=0) is refused: `scale` never runs, so the
    # check cannot call the adapter clean.
    rep = check_json("correct_adapter.PickyAdapter", rc=EXIT_INCOMPLETE)
    assert rep["problems"] == 0
    (un,) = rep["not_exercised"]
    assert un["name"] == "scale" and "factor must be above 100" in un["reason"]
    proc = check("--python-path", ADAPTERS, "correct_adapter.PickyAdapter")
    assert proc.returncode == EXIT_INCOMPLETE
    assert "Not exercised (1)" in proc.stdout and "scale" in proc.stdout
    assert "Result: incomplete" in proc.stdout and "no thread-safety problems found\n" not in proc.stdout
    # Given working arguments, or left out on purpose, the check passes.
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"scale": {"factor": 500}}))
    rep = check_json("correct_adapter.PickyAdapter", "--args", str(args), rc=EXIT_OK)
    assert rep["not_exercised"] == [] and {t["name"] for t in rep["tools"]} >= {"scale"}
    check_json("correct_adapter.PickyAdapter", "--skip", "scale", rc=EXIT_OK)


def test_import_inside_a_tool_is_reported():
    rep = check_json("racy_adapter.LazyImportAdapter", rc=EXIT_FINDINGS)
    (f,) = by_kind(rep, "unsafe_library")
    assert f["library"] == "sqlite3"
    line = marker_line("racy_adapter.py", "# LAZY IMPORT")
    assert f["message"].startswith("⚠️  THREAD SAFETY: Unsafe library 'sqlite3' detected\n")
    assert f"racy_adapter.py:{line} (during tool 'query' on thread 'snakepit-w1-t" in f["message"]
    (lib,) = [x for x in rep["libraries"] if x["library"] == "sqlite3"]
    assert lib["tool"] == "query" and lib["status"] == "unsafe"
    # --allow: the author locks around it; it becomes a note.
    rep = check_json("--allow", "sqlite3", "racy_adapter.LazyImportAdapter", rc=EXIT_OK)
    assert any("sqlite3" in n for n in rep["notes"])


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None,
                    reason=f"pandas is not installed for Python {sys.version.split()[0]} "
                           f"({sys.executable}); Debian: python3-pandas, for /usr/bin/python3")
def test_pandas_pitfall_3():
    rep = check_json("racy_pandas_adapter.RacyPandasAdapter", rc=EXIT_FINDINGS)
    (lib,) = by_kind(rep, "unsafe_library")
    assert lib["library"] == "pandas"
    assert f"racy_pandas_adapter.py:{marker_line('racy_pandas_adapter.py', '# UNSAFE IMPORT')}" \
        in lib["message"]
    assert "Workaround: Wrap DataFrame work in acquire_lock()" in lib["message"]
    (w,) = by_kind(rep, "unlocked_write")
    assert (w["attribute"], w["line"]) == ("totals", marker_line("racy_pandas_adapter.py", "# RACE totals"))
    libs = {x["library"]: x["status"] for x in rep["libraries"]}
    assert libs["pandas"] == "unsafe" and libs["numpy"] == "safe"


def test_undeclared_adapter_and_strict_mode():
    rep = check_json("racy_adapter.UndeclaredAdapter", rc=EXIT_FINDINGS)
    (f,) = by_kind(rep, "undeclared_adapter")
    assert f["message"].startswith("⚠️  Adapter UndeclaredAdapter does not declare thread safety.")
    proc = check("--python-path", ADAPTERS, "--strict", "racy_adapter.UndeclaredAdapter")
    assert proc.returncode == EXIT_CONFIG
    assert "Adapter UndeclaredAdapter does not declare thread safety." in proc.stderr
    assert "refuse to start racy_adapter.UndeclaredAdapter in the thread profile" in proc.stderr
    assert proc.stdout == ""


def test_strict_mode_fails_the_racing_calls():
    rep = check_json("--strict", "--tool", "increment", "racy_adapter.RacyAdapter", rc=EXIT_FINDINGS)
    (t,) = rep["tools"]
    assert t["failed"] >= 1
    (f,) = by_kind(rep, "fails_under_load")
    assert "ThreadSafetyError" in f["message"] and "Unlocked write to self.counter" in f["message"]


def test_process_profile_has_no_shared_instance():
    rep = check_json("--profile", "process", "racy_adapter.RacyAdapter", rc=EXIT_OK)
    assert rep["profile"] == "process" and rep["findings"] == []


def test_args_file_and_tool_selection(tmp_path):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"predict": [{"input_data": "input_3", "work_ms": 0},
                                            {"input_data": "input_4", "work_ms": 1}]}))
    rep = check_json("--args", str(args), "--tool", "predict", "--calls", "40",
                     "correct_adapter.CorrectAdapter", rc=EXIT_OK)
    (t,) = rep["tools"]
    assert (t["name"], t["calls"], t["ok"]) == ("predict", 40, 40)
    assert t["args"] == {"input_data": "input_3", "work_ms": 0} and t["generated_args"] is False


def test_adapter_that_fails_to_load_exits_3():
    proc = check("--python-path", ADAPTERS, "no_such_module_for_check.Adapter")
    assert proc.returncode == EXIT_CONFIG
    assert "failed to load" in proc.stderr and "No module named 'no_such_module_for_check'" in proc.stderr


@pytest.mark.parametrize("args, text", [
    ([], "needs exactly one ADAPTER"),
    (["--profile", "fibers", "racy_adapter.RacyAdapter"], "--profile must be thread or process"),
    (["--threads", "0", "racy_adapter.RacyAdapter"], "--threads must be"),
    (["--python-path", "/no/such/dir", "racy_adapter.RacyAdapter"], "/no/such/dir"),
    (["--python-path", ADAPTERS, "--tool", "nope", "racy_adapter.RacyAdapter"], "--tool nope"),
])
def test_usage_errors_exit_2(args, text):
    proc = check(*args)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert text in proc.stderr


def test_args_file_naming_an_unknown_tool_is_a_usage_error(tmp_path):
    args = tmp_path / "args.json"
    args.write_text('{"nope": {}}')
    proc = check("--python-path", ADAPTERS, "--args", str(args), "racy_adapter.RacyAdapter")
    assert proc.returncode == EXIT_USAGE and "names tool 'nope'" in proc.stderr


def test_help_mentions_check():
    proc = check("--help")
    assert proc.returncode == EXIT_OK and "snakepit check ADAPTER" in proc.stdout


def stats_has_thread_safety_merge():
    return "sp_cli_thread_safety_report" in (REPO / "src" / "cli" / "main.c").read_text()


@pytest.mark.skipif(not stats_has_thread_safety_merge(),
                    reason="cmd_stats does not call sp_cli_thread_safety_report yet")
def test_stats_includes_the_checkers_report(tmp_path):
    cfg = tmp_path / "pools.yaml"
    cfg.write_text(f"""pools:
  - name: checked
    worker_profile: thread
    pool_size: 2
    threads_per_worker: 2
    adapter: racy_adapter.UndeclaredAdapter
    python_path: [{json.dumps(ADAPTERS)}]
    thread_safety_checks: true
  - name: plain
    worker_profile: process
    pool_size: 1
    adapter: racy_adapter.RacyAdapter
    python_path: [{json.dumps(ADAPTERS)}]
""")
    proc = subprocess.run([BIN, "-q", "-c", str(cfg), "stats", "checked"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    ts = json.loads(proc.stdout)["thread_safety"]
    assert ts["enabled"] is True and set(ts["workers"]) == {"w1", "w2"}
    assert ts["undeclared_adapters"] == ["UndeclaredAdapter"] and ts["problems"] == 1
    proc = subprocess.run([BIN, "-q", "-c", str(cfg), "stats"], capture_output=True, text=True, timeout=60)
    pools = {p["name"]: p for p in json.loads(proc.stdout)["pools"]}
    assert "thread_safety" in pools["checked"] and "thread_safety" not in pools["plain"]


def test_progress_on_a_terminal():
    """On a terminal, check says which tool it is running (one line, redrawn);
    piped, stderr stays empty (test_racy_adapter_text_report)."""
    from test_cli import run_on_terminal
    rc, err = run_on_terminal("check", "--python-path", ADAPTERS, "racy_adapter.RacyAdapter",
                              stream="stderr", timeout=60)
    assert rc == EXIT_FINDINGS
    steps = re.findall(r"snakepit check: tool (\d+)/(\d+): (\w+)", err)
    assert steps and steps[-1][0] == steps[-1][1], err
    assert "increment" in {name for _, _, name in steps}
    assert err.endswith("\r\x1b[K"), repr(err[-40:])  # the line is cleared for the report


def test_adapter_args_reach_the_constructor(tmp_path):
    (tmp_path / "needs_args.py").write_text(
        "from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, tool\n"
        "class A(ThreadSafeAdapter):\n"
        "    __thread_safe__ = True\n"
        "    def __init__(self, adapter_args=None):\n"
        "        super().__init__()\n"
        "        if adapter_args != ['--mode', 'threaded']:\n"
        "            raise ValueError(f'got {adapter_args!r}')\n"
        "    @tool(description='nothing')\n"
        "    def noop(self):\n        return None\n")
    proc = check("--python-path", str(tmp_path), "needs_args.A")
    assert proc.returncode == EXIT_CONFIG and "got []" in proc.stderr, proc.stderr
    proc = check("--python-path", str(tmp_path), "--adapter-arg=--mode", "--adapter-arg", "threaded",
                 "needs_args.A")
    assert proc.returncode == 0, proc.stdout + proc.stderr
