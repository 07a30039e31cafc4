"""RacyPandasAdapter: the seed's Pitfall 3 (pandas in a thread-profile adapter,
without the lock), plus a shared DataFrame replaced without the lock. Needs
pandas (Debian: python3-pandas); the tests skip it when pandas is missing.

The checker must report pandas as an unsafe library (at the import below) and
the unlocked write to ``self.totals`` (the line marked as a race).
"""

import time

import pandas as pd  # UNSAFE IMPORT

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool


class RacyPandasAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        self.totals = pd.DataFrame({"category": [], "value": []})

    @thread_safe_method
    @tool(description="Seed Pitfall 3: group a DataFrame, and grow a shared one without the lock")
    def process_data(self, data: list = None, work_ms: float = 2.0) -> dict:
        rows = data or [{"category": "a", "value": 1}, {"category": "b", "value": 2},
                        {"category": "a", "value": 3}]
        df = pd.DataFrame(rows)
        summary = df.groupby("category")["value"].sum()
        time.sleep(work_ms / 1000.0)
        self.totals = pd.concat([self.totals, df], ignore_index=True)  # RACE totals
        return {k: float(v) for k, v in summary.items()}
