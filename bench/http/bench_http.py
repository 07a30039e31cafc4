"""HTTP benchmark: `snakepit serve` against uWSGI serving the same no-op Python
function, both driven by `wrk -t2 -c16` with a POST of "{}", side by side in one
run (rounds interleave the servers, so a noisy neighbour hits both alike).

  snakepit   testing_adapter.TestingAdapter.noop behind POST /v1/pools/P/tools/noop,
             a process pool of 2 workers (uWSGI's 2 processes) and a thread pool
  uWSGI      bench/http/uwsgi_app.py (json.loads, noop(), json.dumps), --processes 2,
             in its three HTTP modes: --http11-socket (workers speak HTTP/1.1 with
             keep-alive), --http-socket (workers speak HTTP, one request per
             connection) and --http (a router process in front of the workers, the
             mode uWSGI's documentation gives for clients that talk to it directly)

Prints requests/s and latency percentiles (median over the rounds) and the ratio
to each uWSGI variant, then chunks/s and first-chunk latency of a streaming
tool read by curl as Server-Sent Events and as NDJSON, and writes them as JSON to BUILD/bench/http.json.
Installs wrk and uWSGI (scripts/install-deps.sh bench) when they are missing.

Usage: /usr/bin/python3 bench/http/bench_http.py [--build DIR] [--duration S] [--rounds N]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UWSGI_PLUGIN = "/usr/lib/uwsgi/plugins/python3_plugin.so"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only


def ensure_tools():
    if shutil.which("wrk") and shutil.which("uwsgi") and os.path.exists(UWSGI_PLUGIN):
        return
    print("bench_http: installing wrk and uWSGI (scripts/install-deps.sh bench)", flush=True)
    subprocess.run([os.path.join(ROOT, "scripts", "install-deps.sh"), "bench"], check=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, method="GET", timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)
            with NO_PROXY.open(req, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_snakepit(build, tmp):
    adapters = os.path.join(ROOT, "tests", "adapters")
    cfg = os.path.join(tmp, "pools.yaml")
    with open(cfg, "w") as f:
        f.write("pools:\n")
        for name, profile, size, threads in (("proc2", "process", 2, 1), ("thread2x8", "thread", 2, 8)):
            f.write(f"  - name: {name}\n    worker_profile: {profile}\n    pool_size: {size}\n"
                    f"    threads_per_worker: {threads}\n    adapter: testing_adapter.TestingAdapter\n"
                    f"    python_path: [{json.dumps(adapters)}]\n")
    port = free_port()
    proc = subprocess.Popen([os.path.join(build, "snakepit"), "-q", "serve", "-c", cfg,
                             "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/readyz")
    return proc, port


def start_uwsgi(mode):
    port = free_port()
    plugins = "python3,http" if mode == "http" else "python3"  # the router is a plugin
    proc = subprocess.Popen(["uwsgi", "--plugin", plugins, f"--{mode}", f"127.0.0.1:{port}",
                             "--processes", "2", "--master", "--wsgi-file",
                             os.path.join(HERE, "uwsgi_app.py"), "--disable-logging",
                             "--die-on-term", "--need-app"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/", method="POST")
    return proc, port


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def run_wrk(url, duration):
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{duration}s", "--latency", "-s",
                          os.path.join(HERE, "post.lua"), url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_us": to_us(lat["50"]), "p90_us": to_us(lat["90"]), "p99_us": to_us(lat["99"]),
            "errors": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))}


STREAM_CHUNKS = 200000


def run_stream(url, accept, n):
    """One streaming call read by curl: (seconds to the first byte, seconds in all)."""
    out = subprocess.run(["curl", "-s", "-N", "-o", "/dev/null", "--noproxy", "*",
                          "-w", "%{http_code} %{time_starttransfer} %{time_total}",
                          "-H", "Content-Type: application/json", "-H", f"Accept: {accept}",
                          "-d", json.dumps({"n": n}), url],
                         capture_output=True, text=True, timeout=300).stdout.split()
    if out[0] != "200":
        raise RuntimeError(f"streaming call answered {out[0]}")
    return float(out[1]), float(out[2])


def bench_streams(port, rounds):
    """Chunks/s of the testing adapter's tight generator (small JSON items) read
    by curl as SSE and as NDJSON, and the first-chunk latency of one-chunk
    streams (time to the first byte, which carries the first event)."""
    url = f"http://127.0.0.1:{port}/v1/pools/proc2/tools/tight"
    out = {}
    for name, accept in (("sse", "text/event-stream"), ("ndjson", "application/x-ndjson")):
        rates = []
        for _ in range(rounds):
            _, total = run_stream(url, accept, STREAM_CHUNKS)
            rates.append(STREAM_CHUNKS / total)
        first = sorted(run_stream(url, accept, 1)[0] * 1e6 for _ in range(50))
        out[name] = {"chunks_per_s": statistics.median(rates), "first_chunk_p50_us": first[25]}
        print(f"streaming over HTTP, {name}: {out[name]['chunks_per_s']:,.0f} chunks/s, "
              f"first chunk p50 {out[name]['first_chunk_p50_us']:,.0f} us", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = ap.parse_args()
    ensure_tools()
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sp, sp_port = start_snakepit(os.path.abspath(args.build), tmp)
            procs.append(sp)
            ports = {}
            for mode in ("http11-socket", "http-socket", "http"):
                proc, ports[mode] = start_uwsgi(mode)
                procs.append(proc)
            targets = {
                "snakepit process 2x1": f"http://127.0.0.1:{sp_port}/v1/pools/proc2/tools/noop",
                "snakepit thread 2x8": f"http://127.0.0.1:{sp_port}/v1/pools/thread2x8/tools/noop",
                "uWSGI --http11-socket": f"http://127.0.0.1:{ports['http11-socket']}/",
                "uWSGI --http-socket": f"http://127.0.0.1:{ports['http-socket']}/",
                "uWSGI --http (router)": f"http://127.0.0.1:{ports['http']}/",
            }
            for url in targets.values():  # warm-up
                run_wrk(url, 2)
            runs = {name: [] for name in targets}
            for r in range(args.rounds):
                for name, url in targets.items():
                    res = run_wrk(url, args.duration)
                    runs[name].append(res)
                    print(f"round {r + 1}: {name:24s} {res['rps']:>10,.0f} req/s  p99 {res['p99_us']:>9,.0f} us",
                          flush=True)
            streams = bench_streams(sp_port, args.rounds)
        finally:
            for p in procs:
                stop(p)
    summary = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in runs.items()}
    print(f"\nwrk -t2 -c16, {args.duration} s x {args.rounds} rounds (medians), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'server':24s} {'req/s':>10s} {'p50 us':>9s} {'p90 us':>9s} {'p99 us':>9s} {'errors':>7s}")
    for name, s in summary.items():
        print(f"{name:24s} {s['rps']:>10,.0f} {s['p50_us']:>9,.0f} {s['p90_us']:>9,.0f} {s['p99_us']:>9,.0f} "
              f"{int(s['errors']):>7d}")
    best = max((n for n in summary if n.startswith("snakepit")), key=lambda n: summary[n]["rps"])
    print()
    for peer in (n for n in summary if n.startswith("uWSGI")):
        ratio = summary[best]["rps"] / summary[peer]["rps"]
        lower = summary[best]["p99_us"] < summary[peer]["p99_us"]
        print(f"{best} vs {peer}: {ratio:.2f}x the requests/s, p99 {'lower' if lower else 'higher'} "
              f"({summary[best]['p99_us']:,.0f} vs {summary[peer]['p99_us']:,.0f} us); "
              f"target >= 1.5x with a lower p99: {'met' if ratio >= 1.5 and lower else 'NOT met'}")
    out = os.path.join(args.build, "bench", "http.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"cpus": os.cpu_count(), "duration_s": args.duration, "rounds": args.rounds,
                   "summary": summary, "runs": runs, "streams": streams}, f, indent=2)
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
