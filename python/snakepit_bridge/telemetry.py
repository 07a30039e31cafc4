"""Telemetry events from tools, under the names Snakepit's Python package uses.

``emit(event, measurements, metadata, correlation_id)`` and the ``span(...)``
context manager (``.start``, ``.stop`` with the duration in nanoseconds,
``.exception``) deliver events to the backend set with :func:`set_backend`.
There is none by default (``is_enabled()`` is False and an event costs a
function call); ``SNAKEPIT_TELEMETRY=stderr`` in the worker's environment
(``adapter_env``) writes each event as one JSON line on stderr, which the
manager forwards to its log. The pool's own figures (calls, latency, workers)
are in ``snakepit stats`` and ``/metrics`` without any of this.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

__all__ = ["emit", "span", "set_backend", "get_backend", "is_enabled", "new_correlation_id",
           "set_correlation_id", "reset_correlation_id", "get_correlation_id",
           "StderrBackend"]

_correlation: contextvars.ContextVar = contextvars.ContextVar("snakepit_correlation_id",
                                                              default=None)


class StderrBackend:
    """Writes each event as one JSON line on stderr."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def emit(self, event: str, measurements: Dict[str, Any],
             metadata: Optional[Dict[str, Any]], correlation_id: Optional[str]) -> None:
        line = json.dumps({"telemetry": event, "measurements": measurements,
                           "metadata": metadata or {}, "correlation_id": correlation_id,
                           "time_ns": time.time_ns()}, default=str)
        with self._lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


_backend: Any = StderrBackend() if os.environ.get("SNAKEPIT_TELEMETRY", "").strip().lower() \
    == "stderr" else None


def set_backend(backend: Any) -> None:
    """Route events to ``backend`` (an object with ``emit(event, measurements,
    metadata, correlation_id)``), or nowhere with None."""
    global _backend
    _backend = backend


def get_backend() -> Any:
    return _backend


def is_enabled() -> bool:
    return _backend is not None


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def set_correlation_id(value: Optional[str]) -> contextvars.Token:
    return _correlation.set(value)


def reset_correlation_id(token: contextvars.Token) -> None:
    _correlation.reset(token)


def get_correlation_id() -> Optional[str]:
    return _correlation.get()


def emit(event: str, measurements: Dict[str, Any], metadata: Optional[Dict[str, Any]] = None,
         correlation_id: Optional[str] = None) -> None:
    """Send one event to the backend, if any. Never raises."""
    backend = _backend
    if backend is None:
        return
    try:
        backend.emit(event, measurements, metadata, correlation_id)
    except Exception:   # noqa: BLE001 - telemetry must never fail a tool
        pass


@contextmanager
def span(operation: str, metadata: Optional[Dict[str, Any]] = None,
         correlation_id: Optional[str] = None) -> Iterator[None]:
    """Emit ``OPERATION.start``, then ``.stop`` (or ``.exception``) with the duration."""
    start = time.time_ns()
    emit(f"{operation}.start", {"system_time": start}, metadata, correlation_id)
    try:
        yield
    except Exception as exc:
        failed = dict(metadata or {}, error_type=type(exc).__name__, error_message=str(exc))
        emit(f"{operation}.exception", {"duration": time.time_ns() - start}, failed,
             correlation_id)
        raise
    emit(f"{operation}.stop", {"duration": time.time_ns() - start}, metadata, correlation_id)
