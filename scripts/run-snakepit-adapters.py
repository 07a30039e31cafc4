#!/usr/bin/python3
"""Run the adapters a Snakepit checkout ships through this project's CLI and
report, tool by tool, what works.

    scripts/run-snakepit-adapters.py PATH/TO/snakepit [--bin build/snakepit] [--json]

PATH is a checkout of github.com/nshkrdotcom/snakepit (its root, or its
priv/python). The adapters run unmodified from
priv/python/snakepit_bridge/adapters (put on the workers' path, so their
modules are threaded_showcase, showcase and template; this project's
snakepit_bridge serves their imports). Every call goes to one `snakepit
serve` per adapter (two workers) in one session (mode strict), so state a
tool leaves for the next stays on one worker as Snakepit's session affinity
keeps it, and a tool calling back into its own pool finds the other worker.

Not part of CI: it needs the checkout, and Snakepit's showcase imports NumPy
and psutil (Debian: python3-numpy, python3-psutil). Exit code 0 when every
tool works or fails only for a reason the table names as expected.
"""

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]

# (tool, arguments, how): "call", "stream", or "stream-timeout" (an endless
# stream: works when chunks arrived before the deadline ended it).
THREADED = [
    ("ping", {"message": "hello"}, "call"),
    ("compute_intensive", {"data": [1.0, 2.0, 3.0], "iterations": 100}, "call"),
    ("matrix_multiply", {"input_vector": [0.01] * 100}, "call"),
    ("batch_process", {"items": [{"id": 1}, {"id": 2}], "delay_ms": 1}, "call"),
    ("get_adapter_stats", {}, "call"),
    ("stress_test", {"duration_ms": 50, "complexity": 100}, "call"),
    ("clear_caches", {}, "call"),
    ("get_history", {"limit": 5}, "call"),
]

SHOWCASE = [
    # @tool methods of ShowcaseAdapter
    ("adapter_info", {}, "call"),
    ("echo", {"x": 1, "y": "two"}, "call"),
    ("basic_echo", {"message": "hi"}, "call"),
    ("basic_add", {"a": 1.5, "b": 2}, "call"),
    ("process_text", {"text": "Snakepit", "operation": "reverse"}, "call"),
    ("get_stats", {}, "call"),
    ("ml_analyze_text", {"text": "fine"}, "call"),
    ("process_binary", {"data": [1, 2, 3], "operation": "checksum"}, "call"),
    ("stream_data", {"count": 3, "delay": 0.05}, "stream"),
    ("concurrent_demo", {"task_count": 2}, "call"),
    ("call_elixir_demo", {"tool_name": "ping"}, "call"),
    # BasicOpsHandler
    ("ping", {"message": "hello"}, "call"),
    ("add", {"a": 2, "b": 3}, "call"),
    ("error_demo", {"error_type": "value"}, "call"),
    ("telemetry_demo", {"operation": "compute", "delay_ms": 5}, "call"),
    ("serialization_demo", {"demo_type": "all"}, "call"),
    # SessionOpsHandler
    ("init_session", {}, "call"),
    ("set_counter", {"value": 5}, "call"),
    ("increment_counter", {}, "call"),
    ("get_counter", {}, "call"),
    ("get_worker_info", {"call_number": 1}, "call"),
    ("cleanup", {}, "call"),
    # BinaryOpsHandler
    ("create_tensor", {"name": "t", "shape": [10, 10]}, "call"),
    ("create_embedding", {"text": "hello", "dimensions": 16}, "call"),
    ("benchmark_encoding", {"start_kb": 1, "end_kb": 21, "step_kb": 10}, "call"),
    # StreamingOpsHandler
    ("stream_progress", {"steps": 3, "delay_ms": 10}, "stream"),
    ("stream_fibonacci", {"count": 5}, "stream"),
    ("generate_dataset", {"rows": 30, "chunk_size": 10}, "stream"),
    ("infinite_stream", {"delay_ms": 100}, "stream-timeout"),
    # ConcurrentOpsHandler
    ("cpu_bound_task", {"task_id": "t1", "duration_ms": 5}, "call"),
    ("sleep_task", {"duration_ms": 10, "task_number": 1}, "call"),
    ("lightweight_task", {"iteration": 3}, "call"),
    ("get_pool_stats", {}, "call"),
    # MLWorkflowHandler (in order: later steps use what load_sample_data stored)
    ("load_sample_data", {"dataset": "iris", "split": 0.8}, "call"),
    ("preprocess_data", {"normalize": True, "handle_missing": "mean",
                         "encode_categorical": False}, "call"),
    ("generate_features", {"method": "polynomial", "degree": 2, "interaction_only": False},
     "call"),
    ("select_features", {"method": "k_best", "k_best": 2}, "call"),
    ("train_model", {"algorithm": "random_forest"}, "stream"),
    ("cross_validate", {"cv_folds": 3}, "call"),
    ("predict_single", {"features": {"sepal_length": 5.1}}, "call"),
    ("predict_batch_with_embeddings", {"batch_size": 4, "include_embeddings": True,
                                       "embedding_dim": 8}, "call"),
]

# Failures that are the tool's documented behaviour.
DOCUMENTED = {
    ("showcase", "error_demo"): ("ValueError", "raises ValueError by design"),
}

ADAPTERS = [
    ("threaded_showcase", "threaded_showcase.ThreadedShowcaseAdapter",
     ["--profile", "thread", "--threads", "4"], THREADED),
    ("showcase", "showcase.ShowcaseAdapter", [], SHOWCASE),
]


def find_adapters(path: pathlib.Path) -> pathlib.Path:
    for candidate in (path / "priv" / "python" / "snakepit_bridge" / "adapters",
                      path / "snakepit_bridge" / "adapters", path):
        if (candidate / "threaded_showcase.py").is_file():
            return candidate
    sys.exit(f"{path}: no snakepit_bridge/adapters/threaded_showcase.py under it "
             f"(give the root of a Snakepit checkout)")


def classify(adapter: str, tool: str, code: int, out: str, err: str, how: str):
    """(works: bool, expected: bool, note) for one run."""
    text = err + out
    if how == "stream-timeout":
        chunks = [line for line in out.splitlines() if line.strip()]
        if len(chunks) >= 2 and "timeout" in text.lower():
            return True, True, f"{len(chunks)} chunks, then ended by the deadline (endless by design)"
    elif code == 0:
        lines = [line for line in out.splitlines() if line.strip()]
        if how == "stream":
            return True, True, f"{len(lines)} chunks"
        try:
            note = json.dumps(json.loads(out), separators=(",", ":"))
        except ValueError:
            note = out.strip().replace("\n", " ")
        return True, True, note[:80] + ("..." if len(note) > 80 else "")
    expected = DOCUMENTED.get((adapter, tool))
    if expected and expected[0] in text:
        return True, True, expected[1]
    if "KeyError" in text and "get_tools()[" in text:
        key = text.split("KeyError: ", 1)[1].split("\n", 1)[0] if "KeyError: " in text else "?"
        return False, True, (f"adapter bug: its handler has no tool {key} "
                             f"(fails the same way on Snakepit)")
    if "No module named 'psutil'" in text:
        return False, False, "needs psutil (Debian: python3-psutil)"
    last = [line for line in err.splitlines() if line.strip()]
    return False, False, (last[-1] if last else f"exit {code}")[:140]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"snakepit serve exited with {proc.returncode}: "
                               f"{proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError("snakepit serve did not become ready")


def run_adapter(binary, adapters_dir, name, spec, pool_opts, tools, env):
    pool = ["--adapter", spec, "--python-path", str(adapters_dir), "--workers", "2", *pool_opts]
    session = ["--session", f"run-{name}", "--session-mode", "strict"]
    rows = []
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([binary, "serve", *pool, "--listen", f"127.0.0.1:{port}", "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env)
    try:
        wait_ready(url, server)
        for tool, args, how in tools:
            stream = [] if how == "call" else ["--stream"]
            limit = ["--timeout", "1000"] if how == "stream-timeout" else []
            cmd = [binary, "--url", url, *session, *limit, "exec", *stream, "default", tool,
                   json.dumps(args)]
            timeout = 120
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            works, expected, note = classify(name, tool, proc.returncode, proc.stdout,
                                             proc.stderr, how)
            rows.append({"adapter": name, "tool": tool, "mode": how, "works": works,
                         "expected": expected, "note": note})
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return rows


def run_template(binary, adapters_dir, env):
    """TemplateAdapter documents that it implements no tools: the pool starts
    (its async initialize runs), offers no tool, refuses a call by name, and
    stops cleanly (its async cleanup runs)."""
    pool = ["--adapter", "template.TemplateAdapter", "--python-path", str(adapters_dir),
            "--workers", "1"]
    rows = []
    tools = subprocess.run([binary, *pool, "tools", "default"], capture_output=True, text=True,
                           timeout=60, env=env)
    ok = tools.returncode == 0 and json.loads(tools.stdout or "null") == []
    rows.append({"adapter": "template", "tool": "(start, tools)", "mode": "lifecycle",
                 "works": ok, "expected": ok,
                 "note": "starts (async initialize), offers no tool" if ok else
                 (tools.stderr.strip().splitlines() or ["?"])[-1][:140]})
    call = subprocess.run([binary, *pool, "exec", "default", "my_custom_tool"],
                          capture_output=True, text=True, timeout=60, env=env)
    ok = call.returncode == 4 and "unknown tool" in call.stderr
    rows.append({"adapter": "template", "tool": "my_custom_tool", "mode": "call",
                 "works": ok, "expected": ok,
                 "note": "refused: unknown tool (available: none)" if ok else
                 call.stderr.strip()[-140:]})
    # Its async cleanup() logs self.session_context.session_id when it stops.
    failed = "cleanup() failed" in call.stderr
    rows.append({"adapter": "template", "tool": "(stop: async cleanup)", "mode": "lifecycle",
                 "works": not failed, "expected": not failed,
                 "note": "runs at drain" if not failed else call.stderr.strip()[-140:]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", type=pathlib.Path)
    ap.add_argument("--bin", default=os.environ.get("SNAKEPIT_BIN") or
                    str(REPO / "build" / "snakepit"))
    ap.add_argument("--json", action="store_true", help="rows as JSON instead of a table")
    opts = ap.parse_args()
    adapters_dir = find_adapters(opts.checkout.resolve())
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("SNAKEPIT_URL", None)
    rows = []
    for name, spec, pool_opts, tools in ADAPTERS:
        rows += run_adapter(opts.bin, adapters_dir, name, spec, pool_opts, tools, env)
    rows += run_template(opts.bin, adapters_dir, env)
    if opts.json:
        print(json.dumps(rows, indent=2))
    else:
        print("| adapter | tool | mode | result | note |")
        print("|---|---|---|---|---|")
        for r in rows:
            result = "works" if r["works"] else ("expected" if r["expected"] else "FAILS")
            note = r["note"].replace("|", "\\|")
            print(f"| {r['adapter']} | {r['tool']} | {r['mode']} | {result} | {note} |")
        works = sum(r["works"] for r in rows)
        print(f"\n{works} of {len(rows)} work; "
              f"{sum(not r['works'] and r['expected'] for r in rows)} fail for a named reason; "
              f"{sum(not r['expected'] for r in rows)} fail otherwise")
    return 0 if all(r["expected"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
