"""A pool with thread_safety_checks: true catches the seed's Pitfall 1
(`self.counter += 1` without the lock) under concurrent HTTP calls with its
default settings, and names the line."""

import json
import os
import threading

from conftest import ADAPTERS, Server, send


def test_pool_checks_catch_pitfall_1_under_concurrent_calls(tmp_path):
    config = f"""pools:
  - name: racy
    worker_profile: thread
    pool_size: 1
    threads_per_worker: 8
    adapter: racy_adapter.RacyAdapter
    python_path: [{json.dumps(ADAPTERS)}]
    thread_safety_checks: true
"""
    s = Server(tmp_path, config)
    try:
        failures = []

        def client():
            c = s.conn()
            try:
                for _ in range(25):
                    status, _, body = send(c, "POST", "/v1/pools/racy/tools/increment", "{}")
                    if status != 200:
                        failures.append((status, body))
            finally:
                c.close()

        threads = [threading.Thread(target=client) for _ in range(8)]  # 200 calls
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failures == []
        (pool,) = s.get_json("/v1/pools?thread_safety=1")["pools"]
        assert "unlocked_writes" in pool["thread_safety"], pool["thread_safety"]
        writes = pool["thread_safety"]["unlocked_writes"]
        counter = [w for w in writes if w["attribute"] == "counter"]
        assert counter, json.dumps(pool["thread_safety"], indent=1)[:2000]
        with open(os.path.join(ADAPTERS, "racy_adapter.py"), encoding="utf-8") as fh:
            (line,) = [i for i, text in enumerate(fh, 1) if "# RACE counter" in text]
        assert counter[0]["line"] == line
    finally:
        assert s.stop() == 0
