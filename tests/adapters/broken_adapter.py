"""BrokenAdapter: importing this module fails (tests the worker's import-error path)."""

import snakepit_nonexistent_module_xyz  # noqa: F401  (does not exist on purpose)

from snakepit_bridge.base_adapter import BaseAdapter, tool


class BrokenAdapter(BaseAdapter):
    @tool(description="never reachable")
    def ping(self):
        return "pong"
