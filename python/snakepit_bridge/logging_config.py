"""Logging for adapters, under the names Snakepit's Python package uses.

``get_logger(name)`` returns a standard :mod:`logging` logger under the
``snakepit.`` namespace (``snakepit_bridge.x`` becomes ``snakepit.bridge.x``,
any other name ``snakepit.NAME``), so adapters written for Snakepit log
unchanged. ``configure_logging()`` sets the root logger up from
``SNAKEPIT_LOG_LEVEL`` (``debug``, ``info``, ``warning``, ``error``, ``none``;
default ``error``). Records go to stderr, which the worker forwards to the
manager's log prefixed with the pool and worker.

Records handled by that handler get a ``correlation_id`` attribute (``-``
unless the caller set one with ``extra=``), so the format never fails.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["configure_logging", "get_logger", "LEVELS"]

#: SNAKEPIT_LOG_LEVEL values and the logging levels they stand for.
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 1,
}

_FORMAT = ("%(asctime)s - [%(threadName)s] - %(name)s - %(levelname)s "
           "- [corr=%(correlation_id)s] %(message)s")


class _DefaultCorrelation(logging.Filter):
    """Gives records without a correlation id the placeholder ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = "-"
        return True


def _level_from_env() -> str:
    name = os.environ.get("SNAKEPIT_LOG_LEVEL", "error").strip().lower()
    return name if name in LEVELS else "error"


def configure_logging(force: bool = False) -> None:
    """Set up the root logger from ``SNAKEPIT_LOG_LEVEL`` (stderr handler).

    Without ``force`` an already configured root logger keeps its handlers
    (as :func:`logging.basicConfig` does); its level is set either way.
    """
    name = _level_from_env()
    logging.disable(logging.CRITICAL if name == "none" else logging.NOTSET)
    root = logging.getLogger()
    if force or not root.handlers:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        # On the handler, so records of every logger reaching it get the field.
        handler.addFilter(_DefaultCorrelation())
        root.addHandler(handler)
    root.setLevel(LEVELS[name])
    for noisy in ("grpc", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    """A logger in the ``snakepit.`` namespace for module ``name``."""
    if name.startswith("snakepit."):
        return logging.getLogger(name)
    if name.startswith("snakepit_bridge."):
        return logging.getLogger("snakepit.bridge." + name[len("snakepit_bridge."):])
    return logging.getLogger("snakepit." + name)
