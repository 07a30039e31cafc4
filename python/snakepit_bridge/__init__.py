"""snakepit_bridge: the Python SDK for Snakepit adapters.

Adapter authors import from here (or from the submodules the seed examples use):

* :mod:`snakepit_bridge.base_adapter` -- ``BaseAdapter`` and the ``@tool`` marker;
* :mod:`snakepit_bridge.base_adapter_threaded` -- ``ThreadSafeAdapter``,
  ``thread_safe_method`` for the thread profile (one instance, many threads);
* :mod:`snakepit_bridge.thread_safety_checker` -- runtime thread-safety checks;
* :mod:`snakepit_bridge.adapters.threaded_showcase` -- a ready-made demo adapter;
* Snakepit's names, for adapters written for it: ``SessionContext``,
  ``get_logger``, ``configure_logging``, ``ZeroCopyRef`` here, and the modules
  :mod:`~snakepit_bridge.logging_config`, :mod:`~snakepit_bridge.session_context`,
  :mod:`~snakepit_bridge.serialization`, :mod:`~snakepit_bridge.telemetry`
  (docs/migrating-from-snakepit.md).

:mod:`snakepit_bridge._host` is the private module the C worker
(``snakepit-worker``) drives; adapters never need it.
"""

from .base_adapter import BaseAdapter, tool
from .base_adapter_threaded import ThreadSafeAdapter, thread_safe_method
from .logging_config import configure_logging, get_logger
from .session_context import SessionContext
from .thread_safety_checker import ThreadSafetyChecker, ThreadSafetyError
from .zero_copy import ZeroCopyRef

__all__ = ["BaseAdapter", "SessionContext", "ThreadSafeAdapter", "ThreadSafetyChecker",
           "ThreadSafetyError", "ZeroCopyRef", "configure_logging", "get_logger",
           "thread_safe_method", "tool"]
__version__ = "0.2.0"
