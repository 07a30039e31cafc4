"""`snakepit exec --stream`: each chunk of a streaming tool is one JSON line on
stdout the moment it arrives (read with timestamps while the command runs)."""

import json
import os
import subprocess
import time

import pytest

from test_cli import BIN, EXIT_PYTHON, EXIT_USAGE, RUN_TIMEOUT, cfg, run  # noqa: F401


@pytest.mark.parametrize("pool", ["tp", "tt"])
def test_stream_prints_each_chunk_as_it_arrives(cfg, pool):  # noqa: F811
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("SNAKEPIT_URL", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([BIN, "-q", "-c", cfg, "exec", "--stream", pool, "count",
                             '{"n": 3, "delay": 0.5}'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append((time.monotonic() - t0, line))
    proc.wait(timeout=RUN_TIMEOUT)
    end = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr.read()
    assert [json.loads(l) for _, l in lines] == [{"i": 0}, {"i": 1}, {"i": 2}]
    # The generator sleeps 0.5 s before each item: the first line must come a
    # good while before the last (not all at once at the end).
    assert lines[-1][0] - lines[0][0] > 0.6, lines
    assert lines[0][0] < end - 0.6


def test_stream_error_after_chunks_keeps_them(cfg):  # noqa: F811
    proc = run("-c", cfg, "exec", "--stream", "tp", "stream_then_fail", '{"n": 2}')
    assert proc.returncode == EXIT_PYTHON
    assert proc.stdout.splitlines() == ["0", "1"]
    assert "failed after 2 chunks" in proc.stderr and "ValueError" in proc.stderr


def test_stream_of_a_plain_tool_is_one_chunk(cfg):  # noqa: F811
    proc = run("-c", cfg, "exec", "--stream", "tp", "add", '{"a": 1, "b": 2}')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "3\n"

