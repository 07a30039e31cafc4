"""Peer baseline for arrays: concurrent.futures.ProcessPoolExecutor(1) sending a
float64 ndarray to a function that returns it (pickled both ways).

Prints JSON: median milliseconds per round trip for 8 MB (and 64 MB).
Run with Debian's interpreter: /usr/bin/python3 bench/peer_ppe_arrays.py [--quick]
"""
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def echo(a):
    return a


def main():
    quick = "--quick" in sys.argv
    out = {}
    with ProcessPoolExecutor(1) as ex:
        for label, n in (("8mb", 1 << 20), ("64mb", 1 << 23)):
            a = np.arange(n, dtype=np.float64) * 0.5
            reps = 2 if quick else (5 if n > (1 << 20) else 15)
            for _ in range(2):
                ex.submit(echo, a).result()
            ms = []
            for _ in range(reps):
                t0 = time.perf_counter()
                b = ex.submit(echo, a).result()
                ms.append((time.perf_counter() - t0) * 1e3)
            assert b[-1] == a[-1]
            out[f"ppe1_{label}_ms"] = statistics.median(ms)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
