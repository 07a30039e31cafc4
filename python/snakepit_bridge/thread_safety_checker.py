"""Runtime thread-safety checks for adapters (development and testing aid).

A :class:`ThreadSafetyChecker` watches tool executions and reports methods that
really ran on several threads *at the same time* (it tracks which threads are
inside each method, and the peak of simultaneous threads), not methods that were
merely called from different threads one after another. It also flags known
thread-unsafe libraries (table in ``compatibility.json``) and adapters that do
not declare ``__thread_safe__ = True``.

    checker = ThreadSafetyChecker(enabled=True, strict_mode=False)
    ...  # run concurrent calls; @thread_safe_method tools are tracked automatically
    print(checker.get_report())

An enabled checker is registered (weakly) as *active*: every
``@thread_safe_method`` / ``@check_thread_safe`` call and every call the worker
host runs while it is active is reported to it. Findings are emitted through
:mod:`warnings` (category :class:`ThreadSafetyWarning`); in ``strict_mode`` they
raise :class:`ThreadSafetyError` instead. All state is guarded by locks, so the
checker is correct on free-threaded Python as well.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import sys
import threading
import time
import warnings
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

__all__ = [
    "ThreadSafetyChecker", "ThreadSafetyError", "ThreadSafetyWarning",
    "enable_checking", "disable_checking", "get_global_checker",
    "check_thread_safe", "require_thread_safe_adapter",
    "validate_adapter_thread_safety", "load_compatibility", "library_info",
    "active_checkers", "track_all",
]

logger = logging.getLogger(__name__)


class ThreadSafetyError(RuntimeError):
    """Raised instead of a warning when a checker runs in strict mode."""


class ThreadSafetyWarning(RuntimeWarning):
    """Category of the warnings emitted by :class:`ThreadSafetyChecker`."""


# --------------------------------------------------------------------------
# Library compatibility table
# --------------------------------------------------------------------------

_COMPAT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compatibility.json")
_compat_lock = threading.Lock()
_compat: Optional[Dict[str, Dict[str, Any]]] = None


def load_compatibility() -> Dict[str, Dict[str, Any]]:
    """Return the library table keyed by lower-case library *and* module name."""
    global _compat
    table = _compat
    if table is not None:
        return table
    with _compat_lock:
        if _compat is None:
            with open(_COMPAT_PATH, encoding="utf-8") as fh:
                entries = json.load(fh)["libraries"]
            table = {}
            for entry in entries:
                entry.setdefault("modules", [entry["library"]])
                table[entry["library"].lower()] = entry
                for mod in entry["modules"]:
                    table.setdefault(mod.lower(), entry)
            _compat = table
        return _compat


def library_info(name: str) -> Optional[Dict[str, Any]]:
    """Return the table entry for a library or module name (``sklearn`` or
    ``scikit-learn``; submodules resolve to their package), or None."""
    table = load_compatibility()
    key = name.lower()
    return table.get(key) or table.get(key.split(".", 1)[0])


# --------------------------------------------------------------------------
# Registry of active checkers
# --------------------------------------------------------------------------

_registry_lock = threading.Lock()
#: Tuple of weak references to enabled checkers. Replaced, never mutated, so
#: readers on the hot path take a consistent snapshot with one attribute read.
_active: tuple = ()


def _register(checker: "ThreadSafetyChecker") -> None:
    global _active
    with _registry_lock:
        refs = [r for r in _active if r() is not None and r() is not checker]
        refs.append(weakref.ref(checker))
        _active = tuple(refs)


def _unregister(checker: "ThreadSafetyChecker") -> None:
    global _active
    with _registry_lock:
        _active = tuple(r for r in _active if r() is not None and r() is not checker)


def active_checkers() -> List["ThreadSafetyChecker"]:
    """Enabled checkers that currently observe executions."""
    out = []
    for ref in _active:
        checker = ref()
        if checker is not None and checker.enabled:
            out.append(checker)
    return out


class _NullContext:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


_NULL = _NullContext()


class _TrackAll:
    """Enter ``track_execution(name)`` on every active checker."""

    __slots__ = ("_name", "_entered")

    def __init__(self, name: str) -> None:
        self._name = name
        self._entered: List[_Execution] = []

    def __enter__(self) -> None:
        try:
            for checker in active_checkers():
                ctx = checker.track_execution(self._name)
                ctx.__enter__()
                self._entered.append(ctx)
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: Any) -> bool:
        while self._entered:
            self._entered.pop().__exit__(None, None, None)
        return False


def track_all(method_name: str) -> Any:
    """Context manager reporting one execution of ``method_name`` to all
    active checkers (a no-op when none is active)."""
    if not _active:
        return _NULL
    return _TrackAll(method_name)


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------

class _MethodStats:
    __slots__ = ("calls", "threads_seen", "active", "peak", "total_time")

    def __init__(self) -> None:
        self.calls = 0
        self.threads_seen: set = set()
        self.active: Dict[int, int] = {}   # thread ident -> nesting depth
        self.peak = 0
        self.total_time = 0.0


class _Execution:
    """Context manager returned by :meth:`ThreadSafetyChecker.track_execution`."""

    __slots__ = ("_checker", "_name", "_tid", "_start")

    def __init__(self, checker: "ThreadSafetyChecker", name: str) -> None:
        self._checker = checker
        self._name = name
        self._tid: Optional[int] = None
        self._start = 0.0

    def __enter__(self) -> "_Execution":
        if self._checker.enabled:
            self._tid = threading.get_ident()
            self._start = time.perf_counter()
            self._checker._enter(self._name, self._tid)
        return self

    def __exit__(self, *exc: Any) -> bool:
        if self._tid is not None:
            self._checker._exit(self._name, self._tid, time.perf_counter() - self._start)
            self._tid = None
        return False


def _concurrency_message(method_name: str, n: int) -> str:
    return (f"⚠️  THREAD SAFETY: Method '{method_name}' accessed by {n} "
            f"different threads concurrently.")


def _adapter_message(name: str) -> str:
    return (f"⚠️  Adapter {name} does not declare thread safety.\n"
            f"  Add __thread_safe__ = True to the class once its shared state is "
            f"read-only, thread-local or locked.")


def _library_message(lib: str, info: Dict[str, Any]) -> str:
    return (f"⚠️  THREAD SAFETY: Unsafe library '{lib}' detected\n"
            f"  Reason: {info.get('reason', '')}\n"
            f"  Workaround: {info.get('workaround', '')}")


class ThreadSafetyChecker:
    """Detects real concurrent access, unsafe libraries and undeclared adapters.

    Args:
        enabled: observe executions (an enabled checker registers itself as
            active; see the module docstring).
        strict_mode: raise :class:`ThreadSafetyError` instead of warning.
    """

    def __init__(self, enabled: bool = True, strict_mode: bool = False) -> None:
        self.strict_mode = strict_mode
        self.enabled = False
        self._lock = threading.Lock()
        self._methods: Dict[str, _MethodStats] = {}
        self._threads: Dict[str, Dict[str, Any]] = {}
        self._warned: set = set()           # keys of warnings already emitted
        self._messages: List[str] = []      # non-concurrency findings, in order
        self._unsafe_libraries: List[str] = []
        self._undeclared_adapters: List[str] = []
        self._start = time.time()
        if enabled:
            self.enable()

    # -- activation --------------------------------------------------------

    def enable(self) -> None:
        self.enabled = True
        _register(self)

    def disable(self) -> None:
        self.enabled = False
        _unregister(self)

    def __enter__(self) -> "ThreadSafetyChecker":
        self.reset()
        self.enable()
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.disable()
        logger.debug("thread safety report:\n%s", self.get_report())
        return False

    # -- findings ------------------------------------------------------------

    def _emit(self, message: str, stacklevel: int = 3) -> None:
        if self.strict_mode:
            raise ThreadSafetyError(message)
        warnings.warn(message, ThreadSafetyWarning, stacklevel=stacklevel)

    def _record_thread(self, method_name: str) -> str:
        # Caller holds self._lock.
        name = threading.current_thread().name
        ts = self._threads.get(name)
        if ts is None:
            ts = self._threads[name] = {"calls": 0, "total_time": 0.0, "methods": set()}
        ts["calls"] += 1
        ts["methods"].add(method_name)
        return name

    def _enter(self, method_name: str, tid: int) -> None:
        with self._lock:
            st = self._methods.get(method_name)
            if st is None:
                st = self._methods[method_name] = _MethodStats()
            st.calls += 1
            st.threads_seen.add(self._record_thread(method_name))
            st.active[tid] = st.active.get(tid, 0) + 1
            n = len(st.active)
            if n > st.peak:
                st.peak = n
            warn = n > 1 and ("concurrent", method_name) not in self._warned
            if warn:
                self._warned.add(("concurrent", method_name))
        if warn:
            try:
                self._emit(_concurrency_message(method_name, n), stacklevel=4)
            except BaseException:
                self._exit(method_name, tid, 0.0)
                raise

    def _exit(self, method_name: str, tid: int, elapsed: float) -> None:
        with self._lock:
            st = self._methods.get(method_name)
            if st is None:          # reset() while the call ran
                return
            depth = st.active.get(tid, 0) - 1
            if depth > 0:
                st.active[tid] = depth
            else:
                st.active.pop(tid, None)
            st.total_time += elapsed
            ts = self._threads.get(threading.current_thread().name)
            if ts is not None:
                ts["total_time"] += elapsed

    def track_execution(self, method_name: str) -> _Execution:
        """Context manager marking the current thread as inside ``method_name``
        for the duration of the block. Overlaps with other threads inside the
        same method are what the concurrency warning reports."""
        return _Execution(self, method_name)

    def check_method_access(self, method_name: str, caller_frame: Any = None) -> int:
        """Record one access to ``method_name`` from the current thread.

        Returns how many distinct threads are inside the method right now
        (executions tracked with :meth:`track_execution`), counting the caller;
        more than one is reported as concurrent access.
        """
        if not self.enabled:
            return 0
        tid = threading.get_ident()
        with self._lock:
            st = self._methods.get(method_name)
            if st is None:
                st = self._methods[method_name] = _MethodStats()
            st.calls += 1
            st.threads_seen.add(self._record_thread(method_name))
            n = len(st.active) + (0 if tid in st.active else 1)
            if n > st.peak:
                st.peak = n
            warn = n > 1 and ("concurrent", method_name) not in self._warned
            if warn:
                self._warned.add(("concurrent", method_name))
        if warn:
            msg = _concurrency_message(method_name, n)
            if caller_frame is not None:
                filename = getattr(caller_frame, "filename", None) or getattr(
                    getattr(caller_frame, "f_code", None), "co_filename", "?")
                lineno = getattr(caller_frame, "lineno", None) or getattr(caller_frame, "f_lineno", "?")
                msg += f"\n  Called from: {filename}:{lineno}"
            self._emit(msg)
        return n

    def check_library_safety(self, name: Union[str, Iterable[str], None] = None) -> List[str]:
        """Warn about known thread-unsafe libraries.

        ``name`` is one library/module name, an iterable of names, or None to
        scan the modules already imported (``sys.modules``). Returns the warning
        messages this call produced (each library is reported once per checker).
        """
        if isinstance(name, str):
            names: Iterable[str] = [name]
        elif name is None:
            loaded = set(sys.modules)
            seen = {id(e): e for e in load_compatibility().values()}
            names = [e["library"] for e in seen.values()
                     if any(m in loaded for m in e["modules"])]
        else:
            names = list(name)
        found = []
        for lib in names:
            info = library_info(lib)
            if info is None or info.get("status") != "unsafe":
                continue
            key = ("library", info["library"])
            with self._lock:
                if key in self._warned:
                    continue
                self._warned.add(key)
                msg = _library_message(info["library"], info)
                self._messages.append(msg)
                self._unsafe_libraries.append(info["library"])
            found.append(msg)
            self._emit(msg)
        return found

    def check_adapter(self, adapter: Any) -> bool:
        """Return True if the adapter (class or instance) declares
        ``__thread_safe__ = True``; otherwise warn (or raise in strict mode)."""
        cls = adapter if isinstance(adapter, type) else type(adapter)
        if getattr(cls, "__thread_safe__", None) is True:
            return True
        key = ("adapter", cls.__module__, cls.__qualname__)
        msg = _adapter_message(cls.__name__)
        with self._lock:
            first = key not in self._warned
            if first:
                self._warned.add(key)
                self._messages.append(msg)
                self._undeclared_adapters.append(cls.__name__)
        if first or self.strict_mode:
            self._emit(msg)
        return False

    # -- reporting -------------------------------------------------------------

    def get_report_dict(self) -> Dict[str, Any]:
        """Structured report: per-method calls, threads and peak concurrency,
        per-thread totals, findings and recommendations."""
        with self._lock:
            methods = {
                name: {
                    "calls": st.calls,
                    "threads": len(st.threads_seen),
                    "peak_concurrency": st.peak,
                    "active_threads": len(st.active),
                    "total_time": st.total_time,
                }
                for name, st in self._methods.items()
            }
            threads = {
                name: {"calls": ts["calls"], "total_time": ts["total_time"],
                       "methods": sorted(ts["methods"])}
                for name, ts in self._threads.items()
            }
            messages = list(self._messages)
            unsafe = list(self._unsafe_libraries)
            undeclared = list(self._undeclared_adapters)
        concurrent = {m: s["peak_concurrency"] for m, s in methods.items()
                      if s["peak_concurrency"] > 1}
        found = [_concurrency_message(m, n) for m, n in sorted(concurrent.items())] + messages
        recs = []
        if concurrent:
            recs.append(f"{len(concurrent)} method(s) ran on several threads at once: make "
                        "sure shared mutable state is locked or thread-local.")
        if unsafe:
            recs.append("Unsafe libraries in use (" + ", ".join(unsafe) + "): lock around "
                        "them or use the process profile.")
        if undeclared:
            recs.append("Declare __thread_safe__ = True on: " + ", ".join(undeclared) + ".")
        if len(threads) <= 1:
            recs.append("Only one thread observed: test with several threads to exercise "
                        "concurrency.")
        if not found:
            recs.append("No thread safety issues detected.")
        return {
            "enabled": self.enabled,
            "strict_mode": self.strict_mode,
            "runtime_seconds": time.time() - self._start,
            "total_threads_seen": len(threads),
            "total_methods_tracked": len(methods),
            "methods": methods,
            "concurrent_accesses": concurrent,
            "thread_utilization": threads,
            "unsafe_libraries": unsafe,
            "undeclared_adapters": undeclared,
            "warnings": found,
            "warnings_issued": len(found),
            "recommendations": recs,
        }

    def get_report(self) -> str:
        """Human-readable report (see :meth:`get_report_dict` for the data)."""
        r = self.get_report_dict()
        lines = [
            "Thread Safety Report",
            "=" * 60,
            f"Runtime: {r['runtime_seconds']:.2f}s   threads seen: {r['total_threads_seen']}"
            f"   methods tracked: {r['total_methods_tracked']}",
        ]
        if r["methods"]:
            lines.append("")
            lines.append(f"{'method':<28}{'calls':>8}{'threads':>9}{'peak':>6}")
            for name, m in sorted(r["methods"].items()):
                lines.append(f"{name:<28}{m['calls']:>8}{m['threads']:>9}{m['peak_concurrency']:>6}")
        lines.append("")
        lines.append(f"Warnings ({len(r['warnings'])}):" if r["warnings"] else "Warnings: none")
        lines.extend(r["warnings"])
        lines.append("")
        lines.append("Recommendations:")
        lines.extend(f"  - {rec}" for rec in r["recommendations"])
        return "\n".join(lines)

    def reset(self) -> None:
        """Forget everything observed so far (calls in flight finish quietly)."""
        with self._lock:
            self._methods.clear()
            self._threads.clear()
            self._warned.clear()
            self._messages.clear()
            self._unsafe_libraries.clear()
            self._undeclared_adapters.clear()
            self._start = time.time()


# --------------------------------------------------------------------------
# Module-level helpers
# --------------------------------------------------------------------------

_global_lock = threading.Lock()
_global_checker: Optional[ThreadSafetyChecker] = None


def get_global_checker() -> ThreadSafetyChecker:
    """The process-wide checker (created disabled on first use)."""
    global _global_checker
    with _global_lock:
        if _global_checker is None:
            _global_checker = ThreadSafetyChecker(enabled=False)
        return _global_checker


def enable_checking(strict_mode: bool = False) -> ThreadSafetyChecker:
    """Enable the global checker and return it."""
    checker = get_global_checker()
    checker.strict_mode = strict_mode
    checker.enable()
    logger.info("thread safety checking enabled%s", " (strict)" if strict_mode else "")
    return checker


def disable_checking() -> None:
    """Stop the global checker (its report stays readable)."""
    get_global_checker().disable()


def check_thread_safe(func: Callable) -> Callable:
    """Decorator: report every call of ``func`` to the active checkers."""
    name = getattr(func, "__name__", repr(func))

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _active:
            return func(*args, **kwargs)
        with _TrackAll(name):
            return func(*args, **kwargs)

    return wrapper


def validate_adapter_thread_safety(adapter: Any) -> bool:
    """True if the adapter class/instance declares ``__thread_safe__ = True``."""
    cls = adapter if isinstance(adapter, type) else type(adapter)
    return getattr(cls, "__thread_safe__", None) is True


def require_thread_safe_adapter(obj: Any = None, *, strict: Optional[bool] = None) -> Any:
    """Require an adapter to declare ``__thread_safe__ = True``.

    * On a class (``@require_thread_safe_adapter``): checked at definition.
    * On an instance: checked now; the instance is returned.
    * On a function whose first argument is an adapter: checked at each call.

    A failing check warns through the global checker, or raises
    :class:`ThreadSafetyError` when ``strict`` is true (default: the global
    checker's strict mode).
    """
    if obj is None:
        return lambda o: require_thread_safe_adapter(o, strict=strict)

    def check(adapter: Any) -> None:
        if validate_adapter_thread_safety(adapter):
            return
        checker = get_global_checker()
        is_strict = checker.strict_mode if strict is None else strict
        cls = adapter if isinstance(adapter, type) else type(adapter)
        if is_strict:
            raise ThreadSafetyError(_adapter_message(cls.__name__))
        checker.check_adapter(cls)

    if inspect.isfunction(obj):
        @functools.wraps(obj)
        def wrapper(adapter: Any, *args: Any, **kwargs: Any) -> Any:
            check(adapter)
            return obj(adapter, *args, **kwargs)
        return wrapper
    check(obj)
    return obj
