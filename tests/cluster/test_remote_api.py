"""The C API on a remote pool (tests/cluster/remote_api.c): sync and async
calls (the callback on the loop thread), Python errors with their traceback,
the deadline, arrays both ways (inline), streams (in order, stopped by
the consumer with the generator closed on the node, paused a window ahead and
resumed, cancelled), tools, pools, stats and discovery."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROGRAM = os.environ.get("SP_REMOTE_API") or str(REPO / "build" / "tests" / "remote_api")


def test_c_api_on_a_remote_pool(tmp_path, nats, nodes):
    nodes(nats.url, "alpha")
    marker = tmp_path / "closed.txt"
    r = subprocess.run([PROGRAM, nats.url, str(marker)], capture_output=True, text=True, timeout=90)
    assert "FAIL" not in r.stdout, r.stdout + r.stderr
    assert r.returncode == 0 and r.stdout.count("ok ") == 19, r.stdout + r.stderr
