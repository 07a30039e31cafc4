"""Peer baseline: concurrent.futures.ProcessPoolExecutor(2) running a no-op.

Prints JSON: sequential latency (p50/p99 us) and calls/s with 16 submitting
threads. Run with Debian's interpreter: /usr/bin/python3 bench/peer_ppe.py [--quick]
"""
import json
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def noop():
    return {"status": "ok"}


def main():
    quick = "--quick" in sys.argv
    calls = 1000 if quick else 10000
    duration = 1.0 if quick else 5.0
    with ProcessPoolExecutor(2) as ex:
        for _ in range(200):
            ex.submit(noop).result()
        lat = []
        for _ in range(calls):
            t0 = time.perf_counter()
            ex.submit(noop).result()
            lat.append((time.perf_counter() - t0) * 1e6)
        lat.sort()
        done = [0] * 16
        stop = time.perf_counter() + duration

        def submitter(i):
            n = 0
            while time.perf_counter() < stop:
                ex.submit(noop).result()
                n += 1
            done[i] = n

        threads = [threading.Thread(target=submitter, args=(i,)) for i in range(16)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    print(json.dumps({
        "sequential_p50_us": lat[len(lat) // 2],
        "sequential_p99_us": lat[int(len(lat) * 0.99)],
        "concurrent16_calls_per_s": sum(done) / elapsed,
    }))


if __name__ == "__main__":
    main()
