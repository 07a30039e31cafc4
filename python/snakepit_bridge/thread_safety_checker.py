"""Runtime thread-safety checks for adapters (development and testing aid).

A :class:`ThreadSafetyChecker` watches tool executions and reports

* methods that really ran on several threads *at the same time* (it tracks
  which threads are inside each method and the peak of simultaneous threads),
  not methods that were merely called from different threads one after another;
* unlocked writes to shared adapter state: an attribute of the adapter
  instance assigned, or a list/dict/set held in one mutated in place, during a
  call while another call on the same adapter runs on another thread, with no
  lock held by the writer (attribute, function, file:line, both threads);
* known thread-unsafe libraries (table in ``compatibility.json``), caught by an
  import hook when they are imported (also inside a tool call), and adapters
  that do not declare ``__thread_safe__ = True``.

    checker = ThreadSafetyChecker(enabled=True, strict_mode=False)
    checker.watch(adapter)   # optional: also track its existing lists/dicts/sets
    ...  # run concurrent calls; @thread_safe_method tools are tracked automatically
    print(checker.get_report())

An enabled checker is registered (weakly) as *active*: every
``@thread_safe_method`` / ``@check_thread_safe`` call and every call the worker
host runs while it is active is reported to it, and the adapter class of a
``@thread_safe_method`` call gets the write hooks (``_tsc_writes``). Findings are
emitted through :mod:`warnings` (category :class:`ThreadSafetyWarning`); in
``strict_mode`` they raise :class:`ThreadSafetyError` instead. All state is
guarded by locks, so the checker is correct on free-threaded Python as well.
With no checker active, nothing is installed and the hooks return at once.
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
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

__all__ = [
    "ThreadSafetyChecker", "ThreadSafetyError", "ThreadSafetyWarning",
    "enable_checking", "disable_checking", "get_global_checker",
    "check_thread_safe", "require_thread_safe_adapter",
    "validate_adapter_thread_safety", "load_compatibility", "library_info",
    "loaded_libraries", "module_entry", "active_checkers", "track_all",
    "watch_adapter_class", "stats_report", "plain_warnings",
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
_by_module: Dict[str, Dict[str, Any]] = {}     # exact import name -> entry


def load_compatibility() -> Dict[str, Dict[str, Any]]:
    """Return the library table keyed by lower-case library *and* module name."""
    global _compat, _by_module
    table = _compat
    if table is not None:
        return table
    with _compat_lock:
        if _compat is None:
            with open(_COMPAT_PATH, encoding="utf-8") as fh:
                entries = json.load(fh)["libraries"]
            table = {}
            by_module = {}
            for entry in entries:
                entry.setdefault("modules", [entry["library"]])
                table[entry["library"].lower()] = entry
                for mod in entry["modules"]:
                    table.setdefault(mod.lower(), entry)
                    by_module[mod] = entry
            _by_module = by_module
            _compat = table
        return _compat


def module_entry(module: str) -> Optional[Dict[str, Any]]:
    """The table entry whose import name is exactly ``module``, or None."""
    load_compatibility()
    return _by_module.get(module)


def loaded_libraries(exclude: Iterable[str] = ()) -> List[Dict[str, Any]]:
    """Table entries of the libraries imported in this process (a module of
    theirs is in ``sys.modules``), minus those whose modules are all in
    ``exclude``; each as ``{library, status, module, reason, workaround}``."""
    load_compatibility()
    skip = set(exclude)
    loaded = set(sys.modules)
    out = []
    seen = set()
    for module, entry in sorted(_by_module.items()):
        if module in loaded and module not in skip and entry["library"] not in seen:
            seen.add(entry["library"])
            out.append({"library": entry["library"], "status": entry["status"], "module": module,
                        "reason": entry.get("reason", ""), "workaround": entry.get("workaround", "")})
    return out


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
        _tsc_imports.install()


def _unregister(checker: "ThreadSafetyChecker") -> None:
    global _active
    with _registry_lock:
        _active = tuple(r for r in _active if r() is not None and r() is not checker)
        if not _active:
            _tsc_imports.uninstall()


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


_current = threading.local()    # .call: (name, owner) of the innermost _TrackAll


class _TrackAll:
    """Enter ``track_execution(name, owner)`` on every active checker."""

    __slots__ = ("_name", "_owner", "_entered", "_outer")

    def __init__(self, name: str, owner: Any = None) -> None:
        self._name = name
        self._owner = owner
        self._entered: List[_Execution] = []
        self._outer: Any = None

    def __enter__(self) -> None:
        owner = self._owner
        if owner is not None and type(owner) not in _tsc_writes._watched:
            # Adapters used directly (tests, seed "Method 1"): hook attribute
            # writes and locks from now on; existing containers stay as they are.
            _tsc_writes.watch_instance(owner, containers=False)
        self._outer = getattr(_current, "call", None)
        try:
            for checker in active_checkers():
                ctx = checker.track_execution(self._name, owner)
                ctx.__enter__()
                self._entered.append(ctx)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        _current.call = (self._name, owner)

    def __exit__(self, *exc: Any) -> bool:
        _current.call = self._outer
        while self._entered:
            self._entered.pop().__exit__(None, None, None)
        return False


def track_all(method_name: str, owner: Any = None) -> Any:
    """Context manager reporting one execution of ``method_name`` (on the
    adapter instance ``owner``, if given) to all active checkers; a no-op
    when none is active, or when this thread is already inside the same
    method of the same owner (the worker tracks a tool call, then its
    ``@thread_safe_method`` wrapper would track it again)."""
    if not _active:
        return _NULL
    cur = getattr(_current, "call", None)
    if cur is not None and cur[1] is owner and cur[0] == method_name and owner is not None:
        return _NULL
    return _TrackAll(method_name, owner)


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


class _Call:
    """The outermost tracked execution running on one thread."""

    __slots__ = ("depth", "method", "thread", "owner")

    def __init__(self, method: str, thread: str, owner: Optional[int]) -> None:
        self.depth = 1
        self.method = method
        self.thread = thread
        self.owner = owner


class _Execution:
    """Context manager returned by :meth:`ThreadSafetyChecker.track_execution`."""

    __slots__ = ("_checker", "_name", "_owner", "_tid", "_start")

    def __init__(self, checker: "ThreadSafetyChecker", name: str, owner: Any = None) -> None:
        self._checker = checker
        self._name = name
        self._owner = None if owner is None else id(owner)
        self._tid: Optional[int] = None
        self._start = 0.0

    def __enter__(self) -> "_Execution":
        if self._checker.enabled:
            self._tid = threading.get_ident()
            self._start = time.perf_counter()
            self._checker._enter(self._name, self._tid, self._owner)
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


def _library_message(lib: str, info: Dict[str, Any], where: str = "") -> str:
    return (f"⚠️  THREAD SAFETY: Unsafe library '{lib}' detected\n"
            + (f"  Imported at: {where}\n" if where else "")
            + f"  Reason: {info.get('reason', '')}\n"
            f"  Workaround: {info.get('workaround', '')}")


_WRITE_VERBS = {"write": "write to", "delete": "deletion of", "mutation": "in-place change"}


def _write_message(w: Dict[str, Any]) -> str:
    target = f"self.{w['attribute']}" + (f".{w['operation']}()" if w["operation"] else "")
    where = w["function"]
    if w["tool"] and w["tool"] != w["function_name"]:
        where += f" (during tool '{w['tool']}')"
    return (f"⚠️  THREAD SAFETY: Unlocked {_WRITE_VERBS[w['kind']]} {target} in {where} "
            f"at {w['file']}:{w['line']}\n"
            f"  Thread '{w['thread']}' made it while thread '{w['other_thread']}' was running "
            f"'{w['other_tool']}' on the same {w['class']} instance, holding no lock.\n"
            f"  Fix: do it inside `with self.acquire_lock():`, keep the value per thread "
            f"(get_thread_local/set_thread_local), or set it only in __init__.")


def _code_location(frame: Any) -> Tuple[str, int, str, str]:
    """(file, line, qualified function name, plain function name) of a frame."""
    code = frame.f_code
    name = code.co_name
    qual = getattr(code, "co_qualname", name)
    return code.co_filename, frame.f_lineno, qual, name


class ThreadSafetyChecker:
    """Detects real concurrent access, unlocked shared-state writes, unsafe
    libraries and undeclared adapters.

    Args:
        enabled: observe executions (an enabled checker registers itself as
            active; see the module docstring).
        strict_mode: raise :class:`ThreadSafetyError` instead of warning.

    ``strict_overlap`` (True by default) makes strict mode raise on a
    method's first concurrent execution too, as the seed's checker does. The
    worker sets it to False: in a thread pool overlapping calls are the point,
    so its strict mode fails calls only for problems (unlocked writes, unsafe
    imports) and logs overlaps.
    """

    def __init__(self, enabled: bool = True, strict_mode: bool = False) -> None:
        self.strict_mode = strict_mode
        self.strict_overlap = True
        self.enabled = False
        self._lock = threading.Lock()
        self._methods: Dict[str, _MethodStats] = {}
        self._threads: Dict[str, Dict[str, Any]] = {}
        self._inflight: Dict[int, _Call] = {}   # thread ident -> its running call
        self._warned: set = set()           # keys of warnings already emitted
        self._messages: List[str] = []      # non-concurrency findings, in order
        self._unsafe_libraries: List[str] = []
        self._undeclared_adapters: List[str] = []
        self._libraries: Dict[str, Dict[str, Any]] = {}   # library -> first sighting
        self._writes: Dict[tuple, Dict[str, Any]] = {}    # (kind, attr, file, line) -> finding
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

    def watch(self, adapter: Any) -> Any:
        """Hook ``adapter`` for the unlocked-write detector now, including the
        lists, dicts and sets it already holds. Call it before other threads
        use the adapter (the worker does this before constructing it).
        ``@thread_safe_method`` calls hook attribute writes on their own, but
        not containers created before. Returns ``adapter``."""
        _tsc_writes.watch_instance(adapter, containers=True)
        return adapter

    # -- findings ------------------------------------------------------------

    def _emit(self, message: str, stacklevel: int = 3, overlap: bool = False) -> None:
        if self.strict_mode and (self.strict_overlap or not overlap):
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

    def _enter(self, method_name: str, tid: int, owner: Optional[int] = None) -> None:
        with self._lock:
            st = self._methods.get(method_name)
            if st is None:
                st = self._methods[method_name] = _MethodStats()
            st.calls += 1
            thread = self._record_thread(method_name)
            st.threads_seen.add(thread)
            st.active[tid] = st.active.get(tid, 0) + 1
            call = self._inflight.get(tid)
            if call is None:
                self._inflight[tid] = _Call(method_name, thread, owner)
            else:
                call.depth += 1
            n = len(st.active)
            if n > st.peak:
                st.peak = n
            warn = n > 1 and ("concurrent", method_name) not in self._warned
            if warn:
                self._warned.add(("concurrent", method_name))
        if warn:
            try:
                self._emit(_concurrency_message(method_name, n), stacklevel=4, overlap=True)
            except BaseException:
                self._exit(method_name, tid, 0.0)
                raise

    def _exit(self, method_name: str, tid: int, elapsed: float) -> None:
        with self._lock:
            call = self._inflight.get(tid)
            if call is not None:
                call.depth -= 1
                if call.depth <= 0:
                    del self._inflight[tid]
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

    def track_execution(self, method_name: str, owner: Any = None) -> _Execution:
        """Context manager marking the current thread as inside ``method_name``
        (a call on the adapter instance ``owner``, if given) for the duration
        of the block. Overlaps with other threads inside the same method are
        what the concurrency warning reports; writes to an adapter while
        another thread runs a call on it are what the write detector checks."""
        return _Execution(self, method_name, owner)

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
            self._emit(msg, overlap=True)
        return n

    def _observe_write(self, obj: Any, attr: str, kind: str, operation: Optional[str],
                       frame: Any) -> None:
        """A write hook saw ``obj.attr`` change (``kind``: write, delete or
        mutation by ``operation``) in ``frame``. Records and reports it when
        another call on ``obj`` runs on another thread and no lock is held."""
        inflight = self._inflight
        if len(inflight) < 2 or not self.enabled:
            return
        tid = threading.get_ident()
        mine = inflight.get(tid)
        if mine is None:
            return
        if _tsc_writes.lock_held(obj, frame):
            return
        oid = id(obj)
        with self._lock:
            other = None
            for otid, call in self._inflight.items():
                if otid != tid and (call.owner is None or call.owner == oid):
                    other = call
                    break
            if other is None:
                return
            other_thread, other_tool, running = other.thread, other.method, len(self._inflight)
        file, line, qual, plain = _code_location(frame)
        key = (kind, attr, file, line)
        with self._lock:
            w = self._writes.get(key)
            first = w is None
            if first:
                w = self._writes[key] = {
                    "attribute": attr, "class": type(obj).__name__, "kind": kind,
                    "operation": operation, "function": qual, "function_name": plain,
                    "tool": mine.method, "file": file, "line": line,
                    "thread": mine.thread, "other_thread": other_thread, "other_tool": other_tool,
                    "count": 0, "max_concurrent_calls": 0,
                }
                w["message"] = _write_message(w)
                self._messages.append(w["message"])
            w["count"] += 1
            if running > w["max_concurrent_calls"]:
                w["max_concurrent_calls"] = running
            message = w["message"]
        if first or self.strict_mode:
            self._emit(message, stacklevel=4)

    def _library_seen(self, info: Dict[str, Any], module: str, where: str) -> Optional[str]:
        """Record a library of the table (imported at ``where``, "" if found
        already imported); returns the warning text if it is unsafe and new."""
        lib = info["library"]
        tid = threading.get_ident()
        with self._lock:
            if lib not in self._libraries:
                call = self._inflight.get(tid)
                self._libraries[lib] = {
                    "library": lib, "status": info.get("status"), "module": module,
                    "reason": info.get("reason", ""), "workaround": info.get("workaround", ""),
                    "imported_at": where or None,
                    "thread": threading.current_thread().name if where else None,
                    "tool": call.method if call is not None and where else None,
                }
            if info.get("status") != "unsafe":
                return None
            key = ("library", lib)
            if key in self._warned:
                return None
            self._warned.add(key)
            rec = self._libraries[lib]
            site = where
            if site and rec["tool"]:
                site += f" (during tool '{rec['tool']}' on thread '{rec['thread']}')"
            msg = _library_message(lib, info, site)
            self._messages.append(msg)
            self._unsafe_libraries.append(lib)
        return msg

    def check_library_safety(self, name: Union[str, Iterable[str], None] = None) -> List[str]:
        """Warn about known thread-unsafe libraries.

        ``name`` is one library/module name, an iterable of names, or None to
        scan the modules already imported (``sys.modules``). Returns the warning
        messages this call produced (each library is reported once per checker).
        Libraries imported while a checker is active are caught by an import
        hook without calling this.
        """
        if isinstance(name, str):
            names: Iterable[str] = [name]
        elif name is None:
            names = [e["module"] for e in loaded_libraries() if e["status"] == "unsafe"]
        else:
            names = list(name)
        found = []
        for lib in names:
            info = library_info(lib)
            if info is None:
                continue
            msg = self._library_seen(info, lib, "")
            if msg is not None:
                found.append(msg)
                self._emit(msg)
        return found

    def _library_imported(self, info: Dict[str, Any], module: str, where: str) -> None:
        """Import hook callback: ``module`` (of a table library) is being imported."""
        msg = self._library_seen(info, module, where)
        if msg is not None:
            self._emit(msg, stacklevel=2)

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
        per-thread totals, unlocked writes, libraries seen, findings and
        recommendations. ``problems`` counts what needs fixing (unlocked
        writes, unsafe libraries, undeclared adapters); concurrency alone is
        not a problem, it is what the thread profile is for."""
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
            writes = [dict(w) for w in self._writes.values()]
            libraries = [dict(v) for v in self._libraries.values()]
        for w in writes:
            del w["function_name"]
        concurrent = {m: s["peak_concurrency"] for m, s in methods.items()
                      if s["peak_concurrency"] > 1}
        found = [_concurrency_message(m, n) for m, n in sorted(concurrent.items())] + messages
        recs = []
        if writes:
            attrs = sorted({f"{w['class']}.{w['attribute']}" for w in writes})
            recs.append("Unlocked writes to shared state (" + ", ".join(attrs) + "): update them "
                        "under acquire_lock() or make them thread-local.")
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
            "unlocked_writes": writes,
            "libraries": libraries,
            "unsafe_libraries": unsafe,
            "undeclared_adapters": undeclared,
            "container_tracking": _tsc_writes.container_tracking_available(),
            "problems": len(writes) + len(unsafe) + len(undeclared),
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
        if r["unlocked_writes"]:
            lines.append("")
            lines.append(f"Unlocked shared-state writes ({len(r['unlocked_writes'])}):")
            for w in r["unlocked_writes"]:
                lines.append(f"  {w['class']}.{w['attribute']}"
                             + (f".{w['operation']}()" if w["operation"] else "")
                             + f"  {w['file']}:{w['line']} in {w['function']}"
                             + f"  seen {w['count']}x, threads '{w['thread']}' and "
                             + f"'{w['other_thread']}'")
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
            self._libraries.clear()
            self._writes.clear()
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


def watch_adapter_class(cls: type) -> None:
    """Hook ``cls`` for the unlocked-write detector before instances are
    built (the worker calls this): attribute writes, the locks and fresh
    containers its ``__init__`` stores, and the Lock/RLock globals of its
    module (so ``with _MODULE_LOCK:`` counts as holding a lock)."""
    _tsc_writes.watch_class(cls)
    _tsc_writes.watch_module_locks(sys.modules.get(cls.__module__))


def plain_warnings() -> None:
    """Format :class:`ThreadSafetyWarning` messages as they are (no
    "file:line: ThreadSafetyWarning:" prefix and source line), as the worker's
    log shows them. Other warnings keep the current format; recording
    (``warnings.catch_warnings(record=True)``, ``pytest.warns``) is unaffected."""
    current = warnings.formatwarning
    if getattr(current, "_sp_plain", False):
        return

    def formatwarning(message: Any, category: Any, filename: str, lineno: int,
                      line: Any = None) -> str:
        if isinstance(category, type) and issubclass(category, ThreadSafetyWarning):
            return f"{message}\n"
        return current(message, category, filename, lineno, line)

    formatwarning._sp_plain = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def stats_report() -> Dict[str, Any]:
    """What ``ThreadSafeAdapter.get_stats()`` shows under ``thread_safety``:
    the report of the global checker (the one the worker enables), else of
    the first active checker, else ``{"enabled": False}``."""
    checker = _global_checker
    if checker is None or not checker.enabled:
        active = active_checkers()
        checker = active[0] if active else None
    if checker is None:
        return {"enabled": False}
    return checker.get_report_dict()


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


# Imported last: both modules use this one's registry and table.
from . import _tsc_imports, _tsc_writes  # noqa: E402
