"""Base class for adapters whose single instance serves many threads at once.

In the thread profile the worker runs tools of ONE adapter instance on N native
threads concurrently (truly in parallel on free-threaded Python, and for
GIL-releasing code such as NumPy on any Python). :class:`ThreadSafeAdapter`
gives adapter authors the three patterns this needs:

1. shared read-only state: set it in ``__init__`` and never modify it;
2. per-thread state: :meth:`~ThreadSafeAdapter.get_thread_local` /
   :meth:`~ThreadSafeAdapter.set_thread_local`;
3. shared mutable state: modify it only inside ``with self.acquire_lock():``.

``@thread_safe_method`` counts each call in the adapter's statistics
(:meth:`~ThreadSafeAdapter.get_stats`) and reports it to any active
:class:`~snakepit_bridge.thread_safety_checker.ThreadSafetyChecker`.

The per-instance machinery (locks, thread-local store, counters) is created in
``__new__``, so it exists even if a subclass forgets ``super().__init__()``.
Nothing here relies on the GIL: every shared counter is guarded by a lock.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import thread_safety_checker as _tsc
from .base_adapter import BaseAdapter, tool

__all__ = ["ThreadSafeAdapter", "thread_safe_method", "tool", "threads_from_env"]


def threads_from_env(default: int = 1) -> int:
    """Thread count the worker runs this process with (``SNAKEPIT_THREADS``)."""
    try:
        n = int(os.environ.get("SNAKEPIT_THREADS", ""))
    except ValueError:
        return default
    return n if n > 0 else default


class _RequestTracker:
    """Context manager behind :meth:`ThreadSafeAdapter.track_request`."""

    __slots__ = ("_adapter", "_rec")

    def __init__(self, adapter: "ThreadSafeAdapter") -> None:
        self._adapter = adapter
        self._rec: Optional[list] = None

    def __enter__(self) -> "_RequestTracker":
        self._rec = self._adapter._sp_begin()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._adapter._sp_end(self._rec, exc_type is not None)
        return False


class ThreadSafeAdapter(BaseAdapter):
    """Adapter base for the thread profile (one instance, many threads).

    Subclasses set ``__thread_safe__ = True`` once their shared state follows
    the patterns in the module docstring.
    """

    __thread_safe__ = False

    def __new__(cls, *args: Any, **kwargs: Any) -> "ThreadSafeAdapter":
        self = super().__new__(cls)
        self._sp_lock = threading.RLock()
        self._sp_local = threading.local()
        # One record per thread, [handled, active, failed, peak seen], written
        # only by its thread; statistics add them up. No lock on the call path:
        # a CallCancelled raised into a call right after a lock's acquire would
        # leave that lock held (a `with` block is entered only after the
        # acquire returns), and every later call would wait on it.
        self._sp_records: List[Tuple[str, list]] = []
        self._sp_started = time.time()
        self._sp_max_workers = threads_from_env()
        return self

    def __init__(self, max_workers: Optional[int] = None) -> None:
        super().__init__()
        if max_workers is not None:
            self._sp_max_workers = int(max_workers)

    @property
    def max_workers(self) -> int:
        """Threads the worker runs this adapter on (``SNAKEPIT_THREADS``)."""
        return self._sp_max_workers

    # -- pattern 3: shared mutable state -------------------------------------

    def acquire_lock(self) -> threading.RLock:
        """The adapter's re-entrant lock, for ``with self.acquire_lock():``.

        Hold it only while touching shared mutable state, not during long
        computations (that would serialize all threads).
        """
        return self._sp_lock

    # -- pattern 2: per-thread state ------------------------------------------

    def _thread_store(self) -> Dict[str, Any]:
        try:
            return self._sp_local.store
        except AttributeError:
            store = self._sp_local.store = {}
            return store

    def get_thread_local(self, key: str, default: Any = None) -> Any:
        """Value stored under ``key`` for the calling thread, else ``default``."""
        return self._thread_store().get(key, default)

    def set_thread_local(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` for the calling thread only."""
        self._thread_store()[key] = value

    def clear_thread_local(self, key: Optional[str] = None) -> None:
        """Drop ``key`` (or, with no key, everything) for the calling thread."""
        store = self._thread_store()
        if key is None:
            store.clear()
        else:
            store.pop(key, None)

    # -- statistics -------------------------------------------------------------

    def _sp_begin(self) -> list:
        # Count one request in; returns the calling thread's record, made on
        # its first request (list.append is atomic, also without the GIL).
        try:
            rec = self._sp_local.sp_rec
        except AttributeError:
            rec = self._sp_local.sp_rec = [0, 0, 0, 0]
            self._sp_records.append((threading.current_thread().name, rec))
        rec[0] += 1
        rec[1] += 1
        active = sum(r[1] for _, r in self._sp_records)
        if active > rec[3]:
            rec[3] = active
        return rec

    def _sp_end(self, rec: list, failed: bool) -> None:
        rec[1] -= 1
        if failed:
            rec[2] += 1

    def track_request(self) -> _RequestTracker:
        """Context manager counting one request (total, active, per thread)."""
        return _RequestTracker(self)

    def get_stats(self) -> Dict[str, Any]:
        """Snapshot of request counters.

        ``thread_utilization`` maps each thread name to
        ``{"requests_handled": n, "active": k}``.  ``thread_safety`` is the
        thread-safety checker's report when checks are on (see
        :func:`~snakepit_bridge.thread_safety_checker.stats_report`), else
        ``{"enabled": False}``.
        """
        records = list(self._sp_records)
        total = sum(r[0] for _, r in records)
        active = sum(r[1] for _, r in records)
        failed = sum(r[2] for _, r in records)
        peak = max((r[3] for _, r in records), default=0)
        per: Dict[str, Dict[str, int]] = {}
        for name, r in records:         # threads that shared a name share a line
            line = per.setdefault(name, {"requests_handled": 0, "active": 0})
            line["requests_handled"] += r[0]
            line["active"] += r[1]
        gil = getattr(sys, "_is_gil_enabled", None)
        return {
            "total_requests": total,
            "active_requests": active,
            "peak_active_requests": peak,
            "failed_requests": failed,
            "max_workers": self._sp_max_workers,
            "utilization": active / self._sp_max_workers if self._sp_max_workers else 0.0,
            "thread_utilization": per,
            "threads_seen": len(per),
            "uptime_seconds": time.time() - self._sp_started,
            "gil_enabled": bool(gil()) if gil is not None else True,
            "adapter": type(self).__name__,
            "thread_safe": getattr(type(self), "__thread_safe__", None) is True,
            "thread_safety": _tsc.stats_report(),
        }


def _call_counted(self: Any, fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Run ``fn`` counted by ``self.track_request()`` (if ``self`` has one)."""
    track = getattr(self, "track_request", None)
    if track is None:
        return fn(self, *args, **kwargs)
    with track():
        return fn(self, *args, **kwargs)


def thread_safe_method(fn: Callable) -> Callable:
    """Decorator for adapter methods run concurrently.

    Counts each call with :meth:`ThreadSafeAdapter.track_request` and reports
    it to active thread-safety checkers. It does NOT lock: protect shared
    mutable state with ``acquire_lock()``. Tool metadata set by ``@tool`` is
    preserved (``functools.wraps`` copies it), in either decorator order.
    Works on any class; without ``track_request`` the call is just passed on.
    """
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _tsc._active:
            with _tsc.track_all(name, self):
                return _call_counted(self, fn, args, kwargs)
        # Fast path, equivalent to _call_counted() when track_request() is
        # not overridden: this wrapper runs on every tool call.
        if getattr(type(self), "track_request", None) is not _BASE_TRACK_REQUEST:
            return _call_counted(self, fn, args, kwargs)
        rec = self._sp_begin()
        try:
            result = fn(self, *args, **kwargs)
        except BaseException:
            self._sp_end(rec, True)
            raise
        self._sp_end(rec, False)
        return result

    wrapper.__snakepit_thread_safe_method__ = True  # type: ignore[attr-defined]
    return wrapper


_BASE_TRACK_REQUEST = ThreadSafeAdapter.track_request
