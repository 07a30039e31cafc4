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

Snakepit's names work too: ``self._tracker`` (a :class:`RequestTracker` over
the same counters: ``start_request``, ``end_request``, ``get_stats``),
``self._lock``, ``self._thread_local`` (:class:`ThreadLocalStorage`),
``get_stats()["tracker"]``, :func:`require_thread_safe` and
:func:`validate_thread_safety`.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import thread_safety_checker as _tsc
from .base_adapter import BaseAdapter, ToolMetadata, tool

__all__ = ["ThreadSafeAdapter", "thread_safe_method", "tool", "threads_from_env",
           "RequestTracker", "ThreadLocalStorage", "ToolMetadata", "require_thread_safe",
           "validate_thread_safety"]


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


class ThreadLocalStorage:
    """Per-thread key/value store (Snakepit's name): ``get``, ``set``,
    ``delete``, ``clear``. The adapter's one is the store behind
    ``get_thread_local`` / ``set_thread_local``."""

    def __init__(self, local: Optional[threading.local] = None) -> None:
        self._local = local if local is not None else threading.local()

    def _store(self) -> Dict[str, Any]:
        try:
            return self._local.store
        except AttributeError:
            store = self._local.store = {}
            return store

    def get(self, key: str, default: Any = None) -> Any:
        return self._store().get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._store()[key] = value

    def delete(self, key: str) -> None:
        self._store().pop(key, None)

    def clear(self) -> None:
        self._store().clear()


class RequestTracker:
    """Counts requests per thread (Snakepit's name and interface).

    A free-standing tracker counts on its own; the one a
    :class:`ThreadSafeAdapter` holds as ``_tracker`` counts into the
    adapter's statistics, so both views agree.
    """

    def __init__(self, adapter: Optional["ThreadSafeAdapter"] = None) -> None:
        self._adapter = adapter
        self._open = threading.local()      # records of requests begun, per thread
        self.lock = threading.Lock()
        self.total_requests = 0
        self.requests_by_thread: Dict[int, int] = {}
        self.active_requests: Dict[int, int] = {}

    def start_request(self, thread_id: Optional[int] = None) -> int:
        """Count one request in on ``thread_id`` (the caller's thread by default);
        returns its number."""
        if self._adapter is not None:
            rec = self._adapter._sp_begin()
            self._open.__dict__.setdefault("recs", []).append(rec)
            return sum(r[0] for _, r in list(self._adapter._sp_records))
        tid = threading.get_ident() if thread_id is None else thread_id
        with self.lock:
            self.total_requests += 1
            self.requests_by_thread[tid] = self.requests_by_thread.get(tid, 0) + 1
            self.active_requests[tid] = self.active_requests.get(tid, 0) + 1
            return self.total_requests

    def end_request(self, thread_id: Optional[int] = None) -> None:
        """Count the thread's latest request out."""
        if self._adapter is not None:
            recs = self._open.__dict__.get("recs")
            if recs:
                self._adapter._sp_end(recs.pop(), False)
            return
        tid = threading.get_ident() if thread_id is None else thread_id
        with self.lock:
            if self.active_requests.get(tid, 0) > 0:
                self.active_requests[tid] -= 1

    def get_stats(self) -> Dict[str, int]:
        """``total_requests``, ``active_threads``, ``total_active_requests``,
        ``threads_seen``."""
        if self._adapter is not None:
            records = list(self._adapter._sp_records)
            return {"total_requests": sum(r[0] for _, r in records),
                    "active_threads": sum(1 for _, r in records if r[1] > 0),
                    "total_active_requests": sum(r[1] for _, r in records),
                    "threads_seen": len(records)}
        with self.lock:
            return {"total_requests": self.total_requests,
                    "active_threads": sum(1 for n in self.active_requests.values() if n > 0),
                    "total_active_requests": sum(self.active_requests.values()),
                    "threads_seen": len(self.requests_by_thread)}


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
        # Snakepit's attribute names for the same machinery.
        self._lock = self._sp_lock
        self._thread_local = ThreadLocalStorage(self._sp_local)
        self._tracker = RequestTracker(self)
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

    def track_request(self, request_id: Optional[str] = None) -> _RequestTracker:
        """Context manager counting one request (total, active, per thread).
        ``request_id`` is accepted for Snakepit code and not used."""
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
            # Snakepit's names for the same figures.
            "adapter_class": type(self).__name__,
            "tracker": {"total_requests": total,
                        "active_threads": sum(1 for _, r in records if r[1] > 0),
                        "total_active_requests": active,
                        "threads_seen": len(records)},
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
    wrapper.__thread_safe__ = True  # type: ignore[attr-defined]  # Snakepit's marker
    return wrapper


def validate_thread_safety(adapter_class: Any) -> bool:
    """True when ``adapter_class`` (or an instance) declares ``__thread_safe__ = True``."""
    return getattr(adapter_class, "__thread_safe__", None) is True


def require_thread_safe(func: Callable) -> Callable:
    """Decorator for functions taking an adapter first: ValueError unless the
    adapter declares ``__thread_safe__ = True``."""
    @functools.wraps(func)
    def wrapper(adapter: Any, *args: Any, **kwargs: Any) -> Any:
        if not validate_thread_safety(adapter):
            raise ValueError(f"Adapter {type(adapter).__name__} is not thread-safe. Set "
                             f"__thread_safe__ = True if it supports concurrent access.")
        return func(adapter, *args, **kwargs)
    return wrapper


_BASE_TRACK_REQUEST = ThreadSafeAdapter.track_request
