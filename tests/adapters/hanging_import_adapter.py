"""An adapter module whose import never finishes: its fork server never says
READY, so no worker of the pool ever starts."""
import time

from snakepit_bridge.base_adapter import BaseAdapter, tool

time.sleep(3600)


class HangingImportAdapter(BaseAdapter):
    @tool(description="Never reachable")
    def noop(self):
        return None
