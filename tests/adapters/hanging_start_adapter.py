"""An adapter whose constructor never finishes: its worker never says HELLO."""
import time

from snakepit_bridge.base_adapter import BaseAdapter, tool


class HangingStartAdapter(BaseAdapter):
    def __init__(self):
        super().__init__()
        time.sleep(3600)

    @tool(description="Never reachable")
    def noop(self):
        return None
