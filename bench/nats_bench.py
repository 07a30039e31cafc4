#!/usr/bin/env python3
"""Calls through NATS next to the local C API, in one run (`make bench`):

- no-op calls/s and p50/p99: the local C API (bench_nats --config), then one
  node and two nodes (`snakepit serve --nats`) behind a local nats-server;
- capacity: a tool sleeping 50 ms on pools of 2 workers, one node then two:
  throughput should double.

Prints a Markdown table (and writes it to --out when given).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pool(size, threads=1):
    profile = "thread" if threads > 1 else "process"
    return (f"pools:\n  - name: work\n    worker_profile: {profile}\n    pool_size: {size}\n"
            f"    threads_per_worker: {threads}\n    adapter: testing_adapter.TestingAdapter\n"
            f"    python_path: [{json.dumps(str(REPO / 'tests' / 'adapters'))}]\n")


def start_node(bin_, url, cfg, name, tmp):
    log = open(tmp / f"{name}.log", "w")
    p = subprocess.Popen([bin_, "serve", "-q", "--nats", url, "-c", str(cfg), "--nats-name", name],
                         stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 30
    while "serving pools" not in (tmp / f"{name}.log").read_text():
        if time.time() > deadline or p.poll() is not None:
            raise RuntimeError((tmp / f"{name}.log").read_text())
        time.sleep(0.05)
    return p


def drive(load, target, tool, args, calls, conc):
    cmd = [load, *target, "--pool", "work", "--tool", tool, "--args", args, "--calls", str(calls),
           "--concurrency", str(conc)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--out")
    a = ap.parse_args()
    nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.path.exists(nats):
        print("nats_bench: nats-server is not installed; skipped")
        return 0
    bin_, load = f"{a.build}/snakepit", f"{a.build}/bench/bench_nats"
    tmp = Path(tempfile.mkdtemp(prefix="nats-bench-"))
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    server = subprocess.Popen([nats, "-a", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    rows, nodes = [], []
    try:
        noop_cfg = tmp / "noop.yaml"
        noop_cfg.write_text(pool(2, 4))
        local1 = drive(load, ["--config", str(noop_cfg)], "noop", "{}", a.calls // 4, 1)
        rows.append(("no-op, local C API, 1 caller", local1))
        local = drive(load, ["--config", str(noop_cfg)], "noop", "{}", a.calls, 8)
        rows.append(("no-op, local C API, 8 callers (2 workers x 4 threads)", local))
        nodes.append(start_node(bin_, url, noop_cfg, "n1", tmp))
        nats1 = drive(load, ["--nats", url], "noop", "{}", a.calls // 4, 1)
        rows.append(("no-op, NATS, 1 node, 1 caller", nats1))
        rows.append(("no-op, NATS, 1 node, 8 callers",
                     drive(load, ["--nats", url], "noop", "{}", a.calls, 8)))
        nodes.append(start_node(bin_, url, noop_cfg, "n2", tmp))
        rows.append(("no-op, NATS, 2 nodes, 8 callers",
                     drive(load, ["--nats", url], "noop", "{}", a.calls, 8)))
        for p in nodes:
            p.terminate()
            p.wait(30)
        nodes.clear()
        sleep_cfg = tmp / "sleep.yaml"
        sleep_cfg.write_text(pool(2))
        nodes.append(start_node(bin_, url, sleep_cfg, "s1", tmp))
        one = drive(load, ["--nats", url], "sleep", '{"seconds": 0.05}', 200, 8)
        rows.append(("sleep 50 ms, NATS, 1 node x 2 workers", one))
        nodes.append(start_node(bin_, url, sleep_cfg, "s2", tmp))
        two = drive(load, ["--nats", url], "sleep", '{"seconds": 0.05}', 200, 8)
        rows.append(("sleep 50 ms, NATS, 2 nodes x 2 workers", two))
    finally:
        for p in nodes:
            p.terminate()
            p.wait(30)
        server.kill()
    lines = ["| run | calls/s | p50 µs | p99 µs | errors |", "|---|---:|---:|---:|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['calls_per_s']:.0f} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | "
                     f"{json.dumps(r['errors'])} |")
    lines.append("")
    lines.append(f"Overhead per no-op call through NATS (1 caller, p50): "
                 f"{nats1['p50_us'] - local1['p50_us']:.0f} µs; capacity 1 -> 2 nodes: "
                 f"x{two['calls_per_s'] / one['calls_per_s']:.2f}")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
