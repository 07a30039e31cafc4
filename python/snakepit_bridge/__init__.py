"""snakepit_bridge: the Python SDK for Snakepit adapters.

Adapter authors import from here (or from the submodules the seed examples use):

* :mod:`snakepit_bridge.base_adapter` -- ``BaseAdapter`` and the ``@tool`` marker;
* :mod:`snakepit_bridge.base_adapter_threaded` -- ``ThreadSafeAdapter``,
  ``thread_safe_method`` for the thread profile (one instance, many threads);
* :mod:`snakepit_bridge.thread_safety_checker` -- runtime thread-safety checks;
* :mod:`snakepit_bridge.adapters.threaded_showcase` -- a ready-made demo adapter.

:mod:`snakepit_bridge._host` is the private module the C worker
(``snakepit-worker``) drives; adapters never need it.
"""

from .base_adapter import BaseAdapter, tool
from .base_adapter_threaded import ThreadSafeAdapter, thread_safe_method
from .thread_safety_checker import ThreadSafetyChecker, ThreadSafetyError

__all__ = ["BaseAdapter", "ThreadSafeAdapter", "ThreadSafetyChecker",
           "ThreadSafetyError", "thread_safe_method", "tool"]
__version__ = "0.2.0"
