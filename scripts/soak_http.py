#!/usr/bin/python3
"""Soak test of `snakepit serve` under abuse (not part of `make test`).

Runs the server on loopback and, for --seconds, at the same time:

- legitimate clients: keep-alive connections calling a tool (JSON POST) and
  reading statistics, each measuring every request's latency;
- slowloris: --slow connections from 127.0.0.2-127.0.0.5 that send one more
  header line every few seconds and are reopened when the server closes them,
  so that about that many abusive connections stay open;
- churn: connections that send half a request and close;
- hostile requests: cross-origin calls, text/plain bodies, ambiguous framing,
  paths that are not UTF-8 (each must get its 4xx, and is not counted as
  legitimate).

Prints the legitimate requests' success rate, p50, p99 and maximum latency,
the abusive connections open on average, and the server's shed counters.
Exits 1 unless every legitimate request succeeded with p99 under --p99-ms.
Every connection goes to 127.0.0.1; the run stops by itself.

    make soak                      # 180 s
    /usr/bin/python3 scripts/soak_http.py --seconds 60 --bin build/snakepit
"""

import argparse
import http.client
import json
import os
import random
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABUSE_SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def start_server(binary, read_timeout):
    tmp = tempfile.mkdtemp(prefix="snakepit-soak-")
    cfg = os.path.join(tmp, "pools.yaml")
    adapters = os.path.join(REPO, "tests", "adapters")
    with open(cfg, "w") as f:
        f.write(f"""pools:
  - name: soak
    worker_profile: thread
    pool_size: 1
    threads_per_worker: 4
    adapter: testing_adapter.TestingAdapter
    python_path: [{json.dumps(adapters)}]
""")
    log = open(os.path.join(tmp, "serve.log"), "w+")
    proc = subprocess.Popen([binary, "-q", "serve", "-c", cfg, "--listen", "127.0.0.1:0",
                             "--read-timeout", str(read_timeout)],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        if m:
            return proc, int(m.group(1)), log
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    proc.kill()
    sys.exit(f"snakepit serve did not start:\n{log.read()}")


class Legit(threading.Thread):
    """One keep-alive client: a call, now and then a statistics read."""

    def __init__(self, port, stop, pause):
        super().__init__(daemon=True)
        self.port, self.stop, self.pause = port, stop, pause
        self.latencies, self.failures = [], []

    def run(self):
        conn = None
        i = 0
        while not self.stop.is_set():
            i += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            if i % 10 == 0:
                method, path, body, headers = "GET", "/v1/pools/soak", None, {}
            else:
                method, path = "POST", "/v1/pools/soak/tools/echo"
                body = json.dumps({"value": i})
                headers = {"Content-Type": "application/json"}
            t0 = time.monotonic()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                ok = resp.status == 200 and (method == "GET" or json.loads(data) == i)
                if not ok:
                    self.failures.append(f"{method} {path}: {resp.status} {data[:200]!r}")
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(f"{method} {path}: {e!r}")
                conn.close()
                conn = None
            self.latencies.append(time.monotonic() - t0)
            time.sleep(self.pause)
        if conn is not None:
            conn.close()


class Slowloris(threading.Thread):
    """Keeps about `count` connections open that never finish their request."""

    def __init__(self, port, stop, count, interval):
        super().__init__(daemon=True)
        self.port, self.stop, self.count, self.interval = port, stop, count, interval
        self.samples, self.reopened = [], 0

    def connect(self, sel, source):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((source, 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return
        sel.register(s, selectors.EVENT_READ, [source, 0, time.monotonic()])

    def run(self):
        sel = selectors.DefaultSelector()
        k = 0
        while not self.stop.is_set():
            while len(sel.get_map()) < self.count:
                self.connect(sel, ABUSE_SOURCES[k % len(ABUSE_SOURCES)])
                k += 1
            self.samples.append(len(sel.get_map()))
            now = time.monotonic()
            for key, _ in sel.select(timeout=0.2):  # readable: closed (or an answer)
                sel.unregister(key.fileobj)
                key.fileobj.close()
                self.reopened += 1
            for key in list(sel.get_map().values()):
                state = key.data
                if now - state[2] < self.interval:
                    continue
                state[2] = now
                line = (b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" if state[1] == 0
                        else b"X-Pad-%d: %d\r\n" % (state[1], random.randrange(1000)))
                state[1] += 1
                try:
                    key.fileobj.send(line)
                except OSError:
                    pass
        for key in list(sel.get_map().values()):
            key.fileobj.close()


HOSTILE = [
    (b"POST /v1/pools/soak/tools/echo HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example\r\n"
     b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 403),
    (b"POST /v1/pools/soak/tools/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
     b"Content-Length: 2\r\n\r\n{}", 415),
    (b"POST /v1/pools/soak/tools/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET /v1/pools/%ff HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    (b"GET /v1/pools HTTP/1.1\r\nHost: rebind.example\r\n\r\n", 403),
]


class Hostile(threading.Thread):
    """Half-sent requests that close at once, and hostile requests checked for their 4xx."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.sent, self.wrong = 0, []

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                             source_address=("127.0.0.6", 0))
            except OSError:
                time.sleep(0.01)
                continue
            try:
                if i % 2:
                    s.sendall(b"POST /v1/pools/soak/tools/echo HTTP/1.1\r\nHost: local")
                else:
                    req, want = HOSTILE[(i // 2) % len(HOSTILE)]
                    s.sendall(req)
                    head = s.recv(4096)
                    status = int(head.split()[1]) if head.startswith(b"HTTP/1.1") else None
                    if status != want:
                        self.wrong.append((req[:60], status))
                self.sent += 1
            except OSError as e:
                self.wrong.append(("hostile", repr(e)))
            finally:
                s.close()
            time.sleep(0.005)


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "snakepit"))
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--clients", type=int, default=8, help="legitimate keep-alive clients")
    ap.add_argument("--pause-ms", type=float, default=20, help="each client's pause between requests")
    ap.add_argument("--slow", type=int, default=1000, help="slowloris connections kept open")
    ap.add_argument("--read-timeout", type=int, default=10)
    ap.add_argument("--p99-ms", type=float, default=100)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, a.slow + 512)), hard))

    proc, port, log = start_server(a.bin, a.read_timeout)
    stop = threading.Event()
    try:
        slow = Slowloris(port, stop, a.slow, interval=3.0)
        slow.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 and (not slow.samples or slow.samples[-1] < a.slow):
            time.sleep(0.1)
        hostile = Hostile(port, stop)
        hostile.start()
        legit = [Legit(port, stop, a.pause_ms / 1000) for _ in range(a.clients)]
        for c in legit:
            c.start()
        end = time.monotonic() + a.seconds
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.5)
        stop.set()
        for t in legit + [slow, hostile]:
            t.join(15)
        metrics = ""
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/metrics")
            metrics = c.getresponse().read().decode()
        except OSError:
            pass
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

    lat = [x for c in legit for x in c.latencies]
    fails = [f for c in legit for f in c.failures]
    ok = len(lat) - len(fails)
    p50, p99 = percentile(lat, 0.50) * 1000, percentile(lat, 0.99) * 1000
    samples = slow.samples[len(slow.samples) // 10:] or [0]
    print(f"soak: {a.seconds:.0f} s, {a.clients} legitimate clients, {a.slow} slowloris target, "
          f"read timeout {a.read_timeout} s")
    print(f"legitimate: {ok}/{len(lat)} succeeded ({100.0 * ok / max(1, len(lat)):.3f}%), "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(lat, default=0) * 1000:.1f} ms")
    print(f"abusive: {sum(samples) / len(samples):.0f} slowloris connections open on average "
          f"(min {min(samples)}), {slow.reopened} closed by the server and reopened; "
          f"{hostile.sent} half-sent or hostile requests, {len(hostile.wrong)} answered wrongly")
    for line in metrics.splitlines():
        if line.startswith("snakepit_http_connections_shed_total"):
            print("server:", line)
    for f in fails[:10]:
        print("  failed:", f)
    for w in hostile.wrong[:10]:
        print("  hostile answered wrongly:", w)
    if proc.returncode not in (0, None):
        log.seek(0)
        print(f"server exited with {proc.returncode}:\n{log.read()[-3000:]}")
    good = not fails and p99 < a.p99_ms and not hostile.wrong and proc.returncode == 0
    print("soak:", "PASS" if good else "FAIL")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
