"""Adapters written for Snakepit, run by real workers through the CLI: tools
behind execute_tool, chunk-object streams, async lifecycle once per worker at
start and at drain, and initialize() failures reported like constructor ones."""

import json

import pytest

from test_cli import ADAPTERS, EXIT_CONFIG, EXIT_INVALID, EXIT_PYTHON, run

REGISTRY = ("--adapter", "snakepit_style_adapter.RegistryAdapter", "--python-path", ADAPTERS,
            "--workers", "1")


def test_tools_lists_registry_tools_next_to_tool_methods():
    proc = run(*REGISTRY, "tools", "default")
    assert proc.returncode == 0, proc.stderr
    names = {t["name"] for t in json.loads(proc.stdout)}
    assert {"add", "countdown", "digest", "shout", "describe"} <= names
    assert not names & {"helper", "execute_tool", "settings"}


def test_registry_tool_is_callable_and_the_rest_is_not():
    proc = run(*REGISTRY, "exec", "default", "add", '{"a": 40, "b": 2}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 42
    proc = run(*REGISTRY, "exec", "default", "helper")
    assert proc.returncode == EXIT_INVALID
    assert "@tool" in proc.stderr


def test_registry_tool_error_is_a_python_error():
    proc = run(*REGISTRY, "exec", "default", "fail", '{"message": "bad input"}')
    assert proc.returncode == EXIT_PYTHON
    assert "ValueError" in proc.stderr and "bad input" in proc.stderr


def test_chunk_objects_stream_line_by_line():
    proc = run(*REGISTRY, "exec", "--stream", "default", "countdown", '{"start": 3}')
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [
        {"n": 3}, {"n": 2}, {"n": 1}]


def test_graceful_results_through_the_cli():
    proc = run(*REGISTRY, "exec", "default", "odd_result")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["when"] == "2024-05-17" and out["opaque"]["__ffi_unserializable__"] is True


def test_async_lifecycle_once_per_worker_at_start_and_drain(tmp_path):
    log = tmp_path / "life.txt"
    proc = run("--adapter", "snakepit_style_adapter.AsyncLifecycleAdapter", "--python-path",
               ADAPTERS, "--workers", "2", "exec", "default", "state",
               env={"LIFECYCLE_FILE": str(log)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["initialized"] is True and out["context_set"] == 1
    lines = [line.split() for line in log.read_text().splitlines()]
    by_pid = {}
    for step, pid in lines:
        by_pid.setdefault(pid, []).append(step)
    # Two workers, each: context, initialize, and cleanup when the pool stopped.
    assert len(by_pid) == 2, lines
    for steps in by_pid.values():
        assert steps == ["set_session_context", "initialize", "cleanup"], lines


@pytest.mark.parametrize("cls,text", [("FailingInitAdapter", "model file missing"),
                                      ("FailingAsyncInitAdapter", "database unreachable")])
def test_initialize_failure_fails_the_start_with_its_traceback(cls, text):
    proc = run("--adapter", f"snakepit_style_adapter.{cls}", "--python-path", ADAPTERS,
               "--workers", "1", "exec", "default", "ping")
    assert proc.returncode == EXIT_CONFIG, (proc.returncode, proc.stderr)
    assert text in proc.stderr and "RuntimeError" in proc.stderr
    assert "initialize" in proc.stderr
