"""Runs every benchmark of the project and its peers in one go and writes
bench/results/latest.md and bench/results/latest.json.

Each figure is the median of several runs (1 with --quick) and is shown with its
ratio to its floor or peer, next to the CPUs the machine has and the CPU time
the run really got (these VMs are shared: a second CPU comes and goes).

With a free-threaded Python (--ft-config PATH, or SNAKEPIT_FT_CONFIG, naming its
python3.14t-config), the report adds pure-Python CPU scaling: thread 1x1 vs 1x2
on that build (built into --ft-build, default build-ft) next to the same on the
GIL build, each with the CPU the run really got.

Usage: /usr/bin/python3 bench/report.py [--quick] [--runs N] [--build DIR]
                                        [--ft-config PATH] [--ft-build DIR]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_json(cmd, timeout=900):
    """Runs cmd and parses the JSON object it prints last on stdout."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=dict(os.environ, SNAKEPIT_LOG_LEVEL="error"))
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    lines = [l for l in out.stdout.splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1])


def run_capi(build, quick):
    path = os.path.join(build, "bench", "capi.json")
    cmd = [os.path.join(build, "bench", "bench_capi"), "--json", path]
    if quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT,
                         env=dict(os.environ, SNAKEPIT_LOG_LEVEL="error"))
    if out.returncode != 0:
        raise RuntimeError(f"bench_capi failed: {out.stdout[-1500:]} {out.stderr[-1500:]}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit="", digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v:,}{unit}"


def ratio(a, b):
    return None if a is None or not b else a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short runs, one of each (CI smoke test)")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, quick 1)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--ft-config", default=os.environ.get("SNAKEPIT_FT_CONFIG") or None,
                    help="python3.14t-config of a free-threaded Python: adds pure-Python scaling")
    ap.add_argument("--ft-build", default=os.path.join(ROOT, "build-ft"))
    args = ap.parse_args()
    if args.ft_config:
        # The free-threaded build of the same sources, in its own folder.
        print(f"building against {args.ft_config} in {args.ft_build}", flush=True)
        subprocess.run(["make", "-C", ROOT, "build", f"BUILD={args.ft_build}",
                        f"PYTHON_CONFIG={args.ft_config}"], check=True,
                       stdout=subprocess.DEVNULL)
    runs = args.runs or (1 if args.quick else 3)
    q = ["--quick"] if args.quick else []
    b = args.build
    started = time.time()

    samples = {k: [] for k in ("floor", "capi", "peer", "numpy", "memory", "startup", "http",
                               "arrays", "peer_arrays", "purepy_gil", "purepy_ft", "preload",
                               "stream", "session", "nested")}
    for i in range(runs):
        print(f"run {i + 1}/{runs}: floor, C API, peer, numpy, memory, startup", flush=True)
        samples["floor"].append(run_json([os.path.join(b, "bench", "bench_floor"),
                                          "5000" if args.quick else "50000"]))
        samples["capi"].append(run_capi(b, args.quick))
        samples["stream"].append(run_json([os.path.join(b, "bench", "bench_stream")] + q))
        samples["session"].append(run_json([os.path.join(b, "bench", "bench_session")] + q))
        samples["nested"].append(run_json([os.path.join(b, "bench", "bench_nested"),
                                           os.path.join(ROOT, "tests", "adapters")] + q))
        samples["peer"].append(run_json(["/usr/bin/python3", os.path.join(HERE, "peer_ppe.py")] + q))
        samples["numpy"].append(run_json([os.path.join(b, "bench", "bench_suite"), "numpy"] + q))
        samples["memory"].append(run_json([os.path.join(b, "bench", "bench_suite"), "memory"]))
        samples["startup"].append(run_json([os.path.join(b, "bench", "bench_suite"), "startup"] + q))
        samples["arrays"].append(run_json([os.path.join(b, "bench", "bench_arrays"),
                                           os.path.join(ROOT, "tests", "adapters")] + q))
        samples["peer_arrays"].append(run_json(["/usr/bin/python3",
                                                os.path.join(HERE, "peer_ppe_arrays.py")] + q))
        samples["preload"].append(run_json([os.path.join(b, "bench", "bench_preload"),
                                            os.path.join(ROOT, "tests", "adapters")] + q))
        if args.ft_config:
            print(f"run {i + 1}/{runs}: pure-Python scaling, GIL build and free-threaded", flush=True)
            samples["purepy_gil"].append(run_json([os.path.join(b, "bench", "bench_suite"),
                                                   "purepy"] + q))
            samples["purepy_ft"].append(run_json([os.path.join(args.ft_build, "bench",
                                                               "bench_suite"), "purepy"] + q))

    # HTTP: wrk against `snakepit serve` and uWSGI, interleaved rounds with their own
    # medians (bench/http/bench_http.py); skipped in quick mode (CI has no wrk/uWSGI).
    http_script = os.path.join(HERE, "http", "bench_http.py")
    if not args.quick and os.path.exists(http_script):
        print("HTTP: wrk against snakepit serve and uWSGI", flush=True)
        out = subprocess.run(["/usr/bin/python3", http_script, "--build", b], cwd=ROOT,
                             capture_output=True, text=True, timeout=1800)
        print(out.stdout[-3000:], flush=True)
        if out.returncode == 0:
            with open(os.path.join(b, "bench", "http.json"), encoding="utf-8") as f:
                samples["http"].append(json.load(f))
        else:
            print(f"HTTP benchmark failed: {out.stderr[-1500:]}", flush=True)

    def capi_tp(s, mode, pool):
        for t in s["throughput"]:
            if t["mode"] == mode and t["pool"] == pool:
                return t["calls_per_s"]
        return None

    fig = {
        "floor_p50_us": median([s["p50_us"] for s in samples["floor"]]),
        "floor_p99_us": median([s["p99_us"] for s in samples["floor"]]),
        "stream_chunks_per_s": median([s["chunks_per_s"] for s in samples["stream"]]),
        "stream_first_chunk_p50_us": median([s["first_chunk_us"]["p50"] for s in samples["stream"]]),
        "session_seq_p50_us": median([s["seq"]["session"]["p50_us"] for s in samples["session"]]),
        "plain_seq_p50_us": median([s["seq"]["plain"]["p50_us"] for s in samples["session"]]),
        "session_par4": median([s["par4"]["session"] for s in samples["session"]]),
        "plain_par4": median([s["par4"]["plain"] for s in samples["session"]]),
        "nested_plain_p50_us": median([s["plain_p50_us"] for s in samples["nested"]]),
        "nested_p50_us": median([s["nested_p50_us"] for s in samples["nested"]]),
        "host_fn_p50_us": median([s["host_fn_p50_us"] for s in samples["nested"]]),
        "seq_p50_us": median([s["sequential"]["latency_us"]["p50"] for s in samples["capi"]]),
        "seq_p99_us": median([s["sequential"]["latency_us"]["p99"] for s in samples["capi"]]),
        "sync16_process_2x1": median([capi_tp(s, "sync", "process_2x1") for s in samples["capi"]]),
        "sync16_thread_1x16": median([capi_tp(s, "sync", "thread_1x16") for s in samples["capi"]]),
        "async64_process_2x1": median([capi_tp(s, "async", "process_2x1") for s in samples["capi"]]),
        "async64_thread_1x16": median([capi_tp(s, "async", "thread_1x16") for s in samples["capi"]]),
        "peer_seq_p50_us": median([s["sequential_p50_us"] for s in samples["peer"]]),
        "peer_seq_p99_us": median([s["sequential_p99_us"] for s in samples["peer"]]),
        "peer_16_calls_per_s": median([s["concurrent16_calls_per_s"] for s in samples["peer"]]),
        "numpy_1x1": median([s["matmul_200_calls_per_s"]["thread_1x1"] for s in samples["numpy"]]),
        "numpy_1x2": median([s["matmul_200_calls_per_s"]["thread_1x2"] for s in samples["numpy"]]),
        "numpy_2x1": median([s["matmul_200_calls_per_s"]["process_2x1"] for s in samples["numpy"]]),
        "numpy_speedup": median([s["thread_speedup_2_vs_1"] for s in samples["numpy"]]),
        "rss_thread_mib": median([s["thread_1x16_rss_mib"] for s in samples["memory"]]),
        "rss_process_mib": median([s["process_16x1_rss_mib"] for s in samples["memory"]]),
        "startup_8_ms": median([s["process_8_ready_ms_median"] for s in samples["startup"]]),
        "startup_1_ms": median([s["process_1_ready_ms_median"] for s in samples["startup"]]),
        "cpu_available": [s["machine"]["cpu_available_2_threads"] for s in samples["capi"]],
    }
    def echo_point(s, nbytes, key):
        return next(p[key] for p in s["echo"] if p["bytes"] == nbytes)
    for label, nbytes in (("4kb", 4096), ("1mb", 1 << 20), ("8mb", 8 << 20), ("64mb", 64 << 20)):
        fig[f"arrays_{label}_ms"] = median([echo_point(s, nbytes, "ours_ms") for s in samples["arrays"]])
        fig[f"arrays_{label}_floor_ms"] = median([echo_point(s, nbytes, "floor_ms") for s in samples["arrays"]])
    fig["arrays_json_8mb_ms"] = median([s["json_8mb_ms"] for s in samples["arrays"]])
    fig["arrays_double_8mb_ms"] = median([s["double_8mb_ms"] for s in samples["arrays"]])
    fig["arrays_double_into_8mb_ms"] = median([s["double_into_8mb_ms"] for s in samples["arrays"]])
    fig["arrays_noop_p50_us"] = median([s["noop_p50_us"] for s in samples["arrays"]])
    fig["ppe1_8mb_ms"] = median([s["ppe1_8mb_ms"] for s in samples["peer_arrays"]])
    fig["ppe1_64mb_ms"] = median([s["ppe1_64mb_ms"] for s in samples["peer_arrays"]])
    def preload_point(s, workers, preload, key):
        return next(r[key] for r in s["runs"] if r["workers"] == workers and r["preload"] == preload)
    for workers in (1, 8):
        for preload, tag in ((True, "preload"), (False, "own")):
            for key in ("pss_mib", "ready_ms"):
                fig[f"{tag}_{workers}_{key}"] = median([preload_point(s, workers, preload, key)
                                                        for s in samples["preload"]])
    fig["model_mib"] = samples["preload"][0]["model_mib"]
    if samples["http"]:
        fig["http"] = samples["http"][0]["summary"]
        fig["http_streams"] = samples["http"][0].get("streams", {})
    for build in ("gil", "ft"):
        got = samples[f"purepy_{build}"]
        if got:
            fig[f"purepy_{build}"] = {
                "1x1": median([s["stress_test_calls_per_s"]["thread_1x1"] for s in got]),
                "1x2": median([s["stress_test_calls_per_s"]["thread_1x2"] for s in got]),
                "speedup": median([s["thread_speedup_2_vs_1"] for s in got]),
                "cpu_avail": [c for s in got for c in s["cpu_avail"]],
            }
    machine = samples["capi"][0]["machine"]
    cpus = machine.get("cpus_online")
    # Every target is a ratio to something measured in the same run, so it can be
    # checked on any machine: absolute figures moved 30-60% between two VMs of
    # the same kind.
    targets = {
        "sequential p50 within 3x the floor": (ratio(fig["seq_p50_us"], fig["floor_p50_us"]) or 99) <= 3.0,
        "16 sync callers on 2 process workers: >= 10x ProcessPoolExecutor(2) with 16 submitters":
            (ratio(fig["sync16_process_2x1"], fig["peer_16_calls_per_s"]) or 0) >= 10.0,
        "numpy speedup >= 1.8x (when 2 CPUs are available)": (fig["numpy_speedup"] or 0) >= 1.8,
        "thread-pool RSS <= 1/6 of the process pool's": (ratio(fig["rss_thread_mib"], fig["rss_process_mib"]) or 1) <= 1 / 6,
        "streaming: >= 200k chunks/s of small JSON items through the C API":
            (fig["stream_chunks_per_s"] or 0) >= 200000,
        "a session call no slower than a plain call by more than 10% (sequential p50)":
            (ratio(fig["session_seq_p50_us"], fig["plain_seq_p50_us"]) or 99) <= 1.10,
        "a session call no slower than a plain call by more than 10% (4 callers, calls/s)":
            (ratio(fig["plain_par4"], fig["session_par4"]) or 99) <= 1.10,
        "8 process workers ready within 2x the time of 1": (ratio(fig["startup_8_ms"], fig["startup_1_ms"]) or 99) <= 2.0,
        "8 MB array in and out within 3x two memcpys": (ratio(fig["arrays_8mb_ms"], fig["arrays_8mb_floor_ms"]) or 99) <= 3.0,
        "8 MB array >= 100x faster than the JSON path": (ratio(fig["arrays_json_8mb_ms"], fig["arrays_8mb_ms"]) or 0) >= 100,
        "8 MB array >= 20x faster than ProcessPoolExecutor(1)": (ratio(fig["ppe1_8mb_ms"], fig["arrays_8mb_ms"]) or 0) >= 20,
        "preload: PSS of 8 process workers sharing a model (200 MB) <= 1.5x that of 1":
            (ratio(fig["preload_8_pss_mib"], fig["preload_1_pss_mib"]) or 99) <= 1.5,
        "preload: 8 workers ready no later than 8 workers without preload":
            (ratio(fig["preload_8_ready_ms"], fig["own_8_ready_ms"]) or 99) <= 1.0,
    }
    if "purepy_ft" in fig:
        targets["pure-Python speedup >= 1.8x on 1x2 threads, free-threaded (when 2 CPUs are "
                "available)"] = (fig["purepy_ft"]["speedup"] or 0) >= 1.8

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.json"), "w", encoding="utf-8") as f:
        json.dump({"figures": fig, "targets": targets, "machine": machine, "runs": runs,
                   "quick": args.quick, "samples": samples,
                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, f, indent=2)

    r = lambda a, b_: fmt(ratio(a, b_), "x", 2)
    lines = [
        "# Benchmark report",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}, {cpus} CPUs online; CPU time "
        f"2 busy threads really got, per run: {', '.join(f'{c:.2f}' for c in fig['cpu_available'])} "
        f"CPUs. Median of {runs} run(s){' (quick mode: short runs, not for quoting)' if args.quick else ''}. "
        f"Python {platform.python_version()} (Debian), {platform.machine()}.",
        "",
        "| figure | ours | reference | ratio |",
        "|---|---|---|---|",
        f"| sequential no-op call, p50 | {fmt(fig['seq_p50_us'], ' us')} | floor (socketpair round trip) {fmt(fig['floor_p50_us'], ' us')} | {r(fig['seq_p50_us'], fig['floor_p50_us'])} |",
        f"| sequential no-op call, p99 | {fmt(fig['seq_p99_us'], ' us')} | floor {fmt(fig['floor_p99_us'], ' us')} | {r(fig['seq_p99_us'], fig['floor_p99_us'])} |",
        f"| sequential no-op call, p50 | {fmt(fig['seq_p50_us'], ' us')} | ProcessPoolExecutor(2) {fmt(fig['peer_seq_p50_us'], ' us')} | {r(fig['seq_p50_us'], fig['peer_seq_p50_us'])} |",
        f"| 16 sync callers, process 2x1 | {fmt(fig['sync16_process_2x1'], ' calls/s', 0)} | ProcessPoolExecutor(2), 16 submitters {fmt(fig['peer_16_calls_per_s'], ' calls/s', 0)} | {r(fig['sync16_process_2x1'], fig['peer_16_calls_per_s'])} |",
        f"| 16 sync callers, thread 1x16 | {fmt(fig['sync16_thread_1x16'], ' calls/s', 0)} | ProcessPoolExecutor(2) {fmt(fig['peer_16_calls_per_s'], ' calls/s', 0)} | {r(fig['sync16_thread_1x16'], fig['peer_16_calls_per_s'])} |",
        f"| async, 64 in flight, process 2x1 | {fmt(fig['async64_process_2x1'], ' calls/s', 0)} | ProcessPoolExecutor(2) {fmt(fig['peer_16_calls_per_s'], ' calls/s', 0)} | {r(fig['async64_process_2x1'], fig['peer_16_calls_per_s'])} |",
        f"| async, 64 in flight, thread 1x16 | {fmt(fig['async64_thread_1x16'], ' calls/s', 0)} | ProcessPoolExecutor(2) {fmt(fig['peer_16_calls_per_s'], ' calls/s', 0)} | {r(fig['async64_thread_1x16'], fig['peer_16_calls_per_s'])} |",
        f"| streaming, tight generator of small JSON items, chunks/s, process 1x1 | {fmt(fig['stream_chunks_per_s'], ' chunks/s', 0)} | target 200k chunks/s | {r(fig['stream_chunks_per_s'], 200000)} |",
        f"| streaming, first-chunk latency (one-chunk stream), p50 | {fmt(fig['stream_first_chunk_p50_us'], ' us')} | sequential no-op call p50 {fmt(fig['seq_p50_us'], ' us')} | {r(fig['stream_first_chunk_p50_us'], fig['seq_p50_us'])} |",
        f"| no-op call in a session (hint), sequential p50, process 2x1 | {fmt(fig['session_seq_p50_us'], ' us')} | plain call, same run {fmt(fig['plain_seq_p50_us'], ' us')} | {r(fig['session_seq_p50_us'], fig['plain_seq_p50_us'])} |",
        f"| no-op calls in sessions (strict), 4 callers, thread 1x4 | {fmt(fig['session_par4'], ' calls/s', 0)} | plain calls, same run {fmt(fig['plain_par4'], ' calls/s', 0)} | {r(fig['session_par4'], fig['plain_par4'])} |",
        f"| call making one nested call (a.relay -> b.add), p50, process 1x1 pools | {fmt(fig['nested_p50_us'], ' us')} | plain call a.add {fmt(fig['nested_plain_p50_us'], ' us')} | {r(fig['nested_p50_us'], fig['nested_plain_p50_us'])} |",
        f"| call making one host function call, p50, process 1x1 | {fmt(fig['host_fn_p50_us'], ' us')} | plain call a.add {fmt(fig['nested_plain_p50_us'], ' us')} | {r(fig['host_fn_p50_us'], fig['nested_plain_p50_us'])} |",
        f"| numpy 200x200 matmul, thread 1x2 | {fmt(fig['numpy_1x2'], ' calls/s')} | thread 1x1 {fmt(fig['numpy_1x1'], ' calls/s')} | {fmt(fig['numpy_speedup'], 'x', 2)} |",
        f"| numpy 200x200 matmul, process 2x1 | {fmt(fig['numpy_2x1'], ' calls/s')} | thread 1x1 {fmt(fig['numpy_1x1'], ' calls/s')} | {r(fig['numpy_2x1'], fig['numpy_1x1'])} |",
        f"| RSS, capacity 16, thread 1x16 | {fmt(fig['rss_thread_mib'], ' MiB')} | process 16x1 {fmt(fig['rss_process_mib'], ' MiB')} | {r(fig['rss_thread_mib'], fig['rss_process_mib'])} |",
        f"| start-up, 8 process workers ready | {fmt(fig['startup_8_ms'], ' ms')} | 1 process worker {fmt(fig['startup_1_ms'], ' ms')} | {r(fig['startup_8_ms'], fig['startup_1_ms'])} |",
    ]
    for label, size in (("4kb", "4 KB"), ("1mb", "1 MB"), ("8mb", "8 MB"), ("64mb", "64 MB")):
        lines.append(f"| float64 array {size} in and out (echo), process 1x1 | {fmt(fig[f'arrays_{label}_ms'], ' ms', 3)} "
                     f"| floor: two memcpys {fmt(fig[f'arrays_{label}_floor_ms'], ' ms', 3)} "
                     f"| {r(fig[f'arrays_{label}_ms'], fig[f'arrays_{label}_floor_ms'])} |")
    lines += [
        f"| 8 MB array in and out | {fmt(fig['arrays_8mb_ms'], ' ms', 2)} | the JSON path (list in, list out) {fmt(fig['arrays_json_8mb_ms'], ' ms', 1)} | {r(fig['arrays_8mb_ms'], fig['arrays_json_8mb_ms'])} |",
        f"| 8 MB array in and out | {fmt(fig['arrays_8mb_ms'], ' ms', 2)} | ProcessPoolExecutor(1), ndarray pickled {fmt(fig['ppe1_8mb_ms'], ' ms', 1)} | {r(fig['arrays_8mb_ms'], fig['ppe1_8mb_ms'])} |",
        f"| 8 MB a * 2 into output_array (shared) | {fmt(fig['arrays_double_into_8mb_ms'], ' ms', 2)} | a * 2 allocated by NumPy, then copied {fmt(fig['arrays_double_8mb_ms'], ' ms', 2)} | {r(fig['arrays_double_into_8mb_ms'], fig['arrays_double_8mb_ms'])} |",
    ]
    m = f"{fig['model_mib']} MB model"
    lines += [
        f"| PSS, process 8x1, {m}, preload | {fmt(fig['preload_8_pss_mib'], ' MiB')} | process 1x1, preload {fmt(fig['preload_1_pss_mib'], ' MiB')} | {r(fig['preload_8_pss_mib'], fig['preload_1_pss_mib'])} |",
        f"| PSS, process 8x1, {m}, no preload | {fmt(fig['own_8_pss_mib'], ' MiB')} | process 1x1, no preload {fmt(fig['own_1_pss_mib'], ' MiB')} | {r(fig['own_8_pss_mib'], fig['own_1_pss_mib'])} |",
        f"| 8 workers ready, {m}, preload | {fmt(fig['preload_8_ready_ms'], ' ms')} | no preload {fmt(fig['own_8_ready_ms'], ' ms')} | {r(fig['preload_8_ready_ms'], fig['own_8_ready_ms'])} |",
    ]
    if "http" in fig:
        h = fig["http"]
        ours = max((n for n in h if n.startswith("snakepit")), key=lambda n: h[n]["rps"])
        for peer in (n for n in h if n.startswith("uWSGI")):
            lines.append(f"| HTTP no-op, wrk -t2 -c16, {ours} | {fmt(h[ours]['rps'], ' req/s', 0)} "
                         f"(p99 {fmt(h[ours]['p99_us'], ' us', 0)}) | {peer} --processes 2 "
                         f"{fmt(h[peer]['rps'], ' req/s', 0)} (p99 {fmt(h[peer]['p99_us'], ' us', 0)}) "
                         f"| {r(h[ours]['rps'], h[peer]['rps'])} |")
    for kind, st in fig.get("http_streams", {}).items():
        lines.append(f"| HTTP streaming ({kind.upper()}, curl), tight generator, process 2x1 | "
                     f"{fmt(st['chunks_per_s'], ' chunks/s', 0)} (first chunk p50 "
                     f"{fmt(st['first_chunk_p50_us'], ' us', 0)}) | C API "
                     f"{fmt(fig['stream_chunks_per_s'], ' chunks/s', 0)} | "
                     f"{r(st['chunks_per_s'], fig['stream_chunks_per_s'])} |")
    for build, label in (("purepy_gil", "GIL build"), ("purepy_ft", "free-threaded 3.14t")):
        if build in fig:
            p = fig[build]
            cpu = ", ".join(f"{c:.2f}" for c in p["cpu_avail"])
            lines.append(f"| pure-Python CPU (stress_test), thread 1x2, {label} | "
                         f"{fmt(p['1x2'], ' calls/s')} | thread 1x1 {fmt(p['1x1'], ' calls/s')} "
                         f"(CPUs available: {cpu}) | {fmt(p['speedup'], 'x', 2)} |")
    lines += ["", "## Targets", ""]
    lines += [f"- {'met' if ok else 'NOT met'}: {name}" for name, ok in targets.items()]
    lines += ["", f"Total benchmark time: {time.time() - started:.0f} s. Raw samples: latest.json.", ""]
    with open(os.path.join(args.out, "latest.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    errors = (sum(s.get("errors", 0) for s in samples["capi"])
              + sum(s.get("failed", 0) for k in ("numpy", "purepy_gil", "purepy_ft", "arrays", "preload")
                    for s in samples[k]))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
