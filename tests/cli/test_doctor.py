"""`snakepit doctor`: the facts it reports are the real ones (compared with what
this interpreter, the one the binary embeds, and the kernel say), its findings
follow from them, and its exit status says whether the pools can run as
configured."""

import json
import os
import resource
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SNAKEPIT_BIN") or str(REPO / "build" / "snakepit")
ADAPTERS = os.environ.get("SP_TEST_ADAPTERS") or str(REPO / "tests" / "adapters")
EXT_DIR = os.environ.get("SP_TEST_EXT_DIR") or str(REPO / "build" / "test-ext")
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
EXIT_OK, EXIT_USAGE, EXIT_CONFIG, EXIT_INVALID = 0, 2, 3, 4


def doctor(*args, config=None, preexec_fn=None):
    cmd = [BIN, "-q"] + (["-c", config] if config else []) + ["doctor", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=preexec_fn,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


def doctor_json(*args, config=None, rc=EXIT_OK, preexec_fn=None):
    proc = doctor("--json", *args, config=config, preexec_fn=preexec_fn)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def findings(rep, pool=None, level=None):
    return [f for f in rep["findings"] if f.get("pool") == pool and (level is None or f["level"] == level)]


def thread_pool_config(tmp_path, adapter):
    path = tmp_path / "pools.yaml"
    path.write_text(f"pools:\n  - name: t\n    worker_profile: thread\n    pool_size: 1\n"
                    f"    threads_per_worker: 2\n    adapter: {adapter}\n"
                    f"    python_path: [\"{ADAPTERS}\"]\n"
                    f"    adapter_env: {{PYTHONPATH: \"{EXT_DIR}\"}}\n")
    return str(path)


def test_builtin_pools_facts_are_the_real_ones():
    rep = doctor_json()
    m = rep["machine"]
    assert m["cpus"] == os.cpu_count() and m["cpus_usable"] == len(os.sched_getaffinity(0))
    assert m["open_files_soft"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    shm = os.statvfs("/dev/shm")
    assert m["shm_bytes"] == shm.f_blocks * shm.f_frsize
    assert [p["name"] for p in rep["pools"]] == ["hpc_pool", "default"]
    for p in rep["pools"]:
        py = p["python"]
        assert py["python_version"] == sys.version.split()[0]
        assert py["free_threaded_build"] is FREE_THREADED
        assert py["gil_enabled_now"] is (not FREE_THREADED)
        assert py["numpy"]["installed"] is (sys.modules.get("numpy") is not None
                                            or __import__("importlib").util.find_spec("numpy")
                                            is not None)
        assert py["numpy"]["blas_thread_env"]["OPENBLAS_NUM_THREADS"] == "1"   # the pools' default
    assert rep["ok"] is True and rep["verdict"].startswith("runs as configured")
    gil = [f["message"] for f in findings(rep, "hpc_pool")]
    if FREE_THREADED:
        assert any(m.startswith("no GIL: pure-Python calls run in parallel") for m in gil), gil
    else:
        assert any(m.startswith("GIL build: the 4 threads") for m in gil), gil
    assert not any("GIL" in f["message"] for f in findings(rep, "default"))   # process profile


def test_text_report_names_build_and_verdict():
    proc = doctor("hpc_pool")
    assert proc.returncode == EXIT_OK, proc.stderr
    out = proc.stdout
    build = "free-threaded build" if FREE_THREADED else "GIL build"
    assert f"Python {sys.version.split()[0]}, {build}" in out
    assert "pool hpc_pool: thread profile, 2 workers x 4 threads" in out
    assert "pool default" not in out                       # only the pool asked for
    assert out.rstrip().splitlines()[-1].startswith("verdict: runs as configured")


def test_gil_turned_on_by_the_adapters_imports(tmp_path):
    rep = doctor_json(config=thread_pool_config(tmp_path, "gil_user_adapter.GilUserAdapter"))
    (pool,) = rep["pools"]
    py = pool["python"]
    assert py["gil_enabled_at_start"] is (not FREE_THREADED)
    assert py["gil_enabled_after_adapter_import"] is True and py["gil_enabled_now"] is True
    warns = [f["message"] for f in findings(rep, "t", "warn")]
    if FREE_THREADED:
        assert py["adapter_extension_modules"] == ["sp_gil_user"]
        assert any("importing the adapter turned the GIL back on" in m and "sp_gil_user" in m
                   for m in warns), warns
        assert pool["stats"]["gil_enabled"] is True and pool["stats"]["gil_reenabled"] == 1
    else:
        assert any(m.startswith("GIL build") for m in warns), warns


def test_pool_that_cannot_start_fails(tmp_path):
    rep = doctor_json(config=thread_pool_config(tmp_path, "broken_adapter.BrokenAdapter"),
                      rc=EXIT_CONFIG)
    assert rep["ok"] is False and rep["verdict"] == "cannot run as configured"
    (fail,) = findings(rep, None, "fail")
    assert fail["message"].startswith("the pools cannot start:") and "broken_adapter" in fail["message"]


def test_open_file_limit_too_low_fails():
    # The built-in pools have 4 workers: ~96 descriptors wanted, 90 allowed.
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (90, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    rep = doctor_json(rc=EXIT_CONFIG, preexec_fn=low_limit)
    assert rep["machine"]["open_files_soft"] == 90
    (fail,) = findings(rep, None, "fail")
    assert fail["message"].startswith("open-file limit 90 is below") and "ulimit -n" in fail["advice"]


@pytest.mark.parametrize("args, rc, text", [(["nope"], EXIT_INVALID, "no pool named 'nope'"),
                                            (["--bogus"], EXIT_USAGE, "usage: snakepit")])
def test_bad_arguments(args, rc, text):
    proc = doctor(*args)
    assert proc.returncode == rc and text in proc.stderr
