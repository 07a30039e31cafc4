"""Unlocked shared-state write detector: the instrumentation behind
:class:`~snakepit_bridge.thread_safety_checker.ThreadSafetyChecker`'s
``unlocked_writes`` report. Private; installed only while checks are on.

What it watches, on a *watched* adapter class (see :func:`watch_class`):

* attribute writes and deletions on an instance (``self.counter += 1``), through
  a ``__setattr__`` / ``__delattr__`` installed on the class;
* in-place mutation of a plain ``list`` / ``dict`` / ``set`` held in an
  attribute (``self.results.append(x)``, ``self.cache[k] = v``): a container
  assigned while checks are on is stored as a tracking subclass, but only when
  nothing else refers to it (a fresh ``[]``, ``{}``, ``set()``, comprehension
  or call result), so no alias ever sees a different object. "Nothing else"
  is read from the reference count; on interpreters whose local-variable loads
  borrow references (CPython 3.14's ``LOAD_FAST_BORROW``), a container held by
  a local variable shows no extra reference, so the instruction that produced
  the stored value is looked at as well (see :func:`_value_source`);
* which locks the writing thread holds: ``threading.Lock`` / ``RLock`` objects
  stored in an attribute of the adapter (its ``acquire_lock()`` lock included)
  or in a global of the adapter's module are wrapped in an owner-tracking proxy
  around the *same* lock, so mutual exclusion is unchanged.

A write is reported to the active checkers, which decide whether it is a
finding: it must happen inside a tracked call while another call on the same
adapter runs on another thread, with no lock held by the writer. Names that
start with ``_sp_`` (the SDK's own bookkeeping) are never reported.

Everything here is reached only through the class hooks, which return at once
when no checker is active, so an adapter costs nothing once checks are off.
"""

from __future__ import annotations

import dis
import sys
import threading
import types
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

from . import thread_safety_checker as _tsc

_get_ident = threading.get_ident
_getrefcount = sys.getrefcount
_object_setattr = object.__setattr__
_object_delattr = object.__delattr__

_LOCK_TYPE = type(threading.Lock())
_RLOCK_TYPE = type(threading.RLock())


# --------------------------------------------------------------------------
# Owner-tracking locks
# --------------------------------------------------------------------------

_locks_mu = threading.Lock()
#: Weak references to every tracking lock; replaced (never mutated) on change.
_tracked_locks: Tuple[weakref.ref, ...] = ()


class _TrackedLock:
    """Proxy for a ``threading.Lock`` that remembers which thread holds it.

    The owner fields change only while the wrapped lock is held, so a thread
    asking "do I hold it?" always reads its own writes.
    """

    __slots__ = ("_sp_inner", "_sp_owner", "_sp_count", "__weakref__")

    def __init__(self, inner: Any) -> None:
        self._sp_inner = inner
        self._sp_owner: Optional[int] = None
        self._sp_count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._sp_inner.acquire(blocking, timeout):
            return False
        tid = _get_ident()
        if self._sp_owner == tid:
            self._sp_count += 1
        else:
            self._sp_owner = tid
            self._sp_count = 1
        return True

    __enter__ = acquire

    def release(self) -> None:
        if self._sp_owner == _get_ident():
            self._sp_count -= 1
            if self._sp_count == 0:
                self._sp_owner = None
        elif type(self) is _TrackedLock:
            # A plain Lock may be released by a thread that did not acquire it.
            self._sp_owner = None
            self._sp_count = 0
        self._sp_inner.release()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def held_by_me(self) -> bool:
        return self._sp_owner == _get_ident()

    def __getattr__(self, name: str) -> Any:
        # locked(), _is_owned(), _at_fork_reinit() ... of the wrapped lock.
        return getattr(self._sp_inner, name)

    def __repr__(self) -> str:
        return repr(self._sp_inner)


class _TrackedRLock(_TrackedLock):
    """Proxy for a ``threading.RLock``; also keeps ``threading.Condition``
    (which saves and restores the recursion level around ``wait()``) exact."""

    __slots__ = ()

    def _release_save(self) -> Any:
        count = self._sp_count
        self._sp_owner = None
        self._sp_count = 0
        return (self._sp_inner._release_save(), count)

    def _acquire_restore(self, saved: Any) -> None:
        self._sp_inner._acquire_restore(saved[0])
        self._sp_owner = _get_ident()
        self._sp_count = saved[1]

    def _is_owned(self) -> bool:
        return self._sp_inner._is_owned()


def track_lock(lock: Any) -> Any:
    """Return an owner-tracking proxy for a Lock/RLock (other objects as is)."""
    t = type(lock)
    if t is _LOCK_TYPE:
        proxy: _TrackedLock = _TrackedLock(lock)
    elif t is _RLOCK_TYPE:
        proxy = _TrackedRLock(lock)
    else:
        return lock
    global _tracked_locks
    with _locks_mu:
        live = tuple(r for r in _tracked_locks if r() is not None)
        _tracked_locks = live + (weakref.ref(proxy),)
    return proxy


def _owns(obj: Any) -> bool:
    """Does the calling thread hold ``obj`` (a lock-like value)? Unknown
    ownership of a held plain Lock counts as held (no false alarm)."""
    if isinstance(obj, _TrackedLock):
        if obj._sp_owner == _get_ident():
            return True
        # Acquired through the bare lock (taken before it was wrapped)?
        inner = obj._sp_inner
        if type(inner) is _RLOCK_TYPE:
            return bool(inner._is_owned())
        return obj._sp_owner is None and inner.locked()
    t = type(obj)
    try:
        if t is _LOCK_TYPE:
            return obj.locked()
        if t is _RLOCK_TYPE or isinstance(obj, threading.Condition):
            return bool(obj._is_owned())
    except Exception:
        return False
    return False


_NOT_HOLDERS = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType,
                types.MethodType)


def _values(space: Any) -> list:
    try:
        return list(space.values())
    except RuntimeError:            # changed size while copying: try once more
        return list(dict(space).values())
    except Exception:
        return []


def lock_held(target: Any, frame: Any) -> bool:
    """Whether the calling thread holds a lock that may guard ``target``: any
    tracking lock, or a lock/condition found on ``target`` or one level below
    (``self.store.lock``), in the writing function's locals, in its globals,
    or in the globals of ``target``'s class's module."""
    tid = _get_ident()
    for ref in _tracked_locks:
        lock = ref()
        if lock is not None and lock._sp_owner == tid:
            return True
    spaces = []
    own = getattr(target, "__dict__", None)
    if isinstance(own, dict):
        spaces.append(own)
        for v in _values(own):
            inner = getattr(v, "__dict__", None) if not isinstance(v, _NOT_HOLDERS) else None
            if isinstance(inner, dict):
                spaces.append(inner)
    if frame is not None:
        spaces.append(frame.f_locals)
        spaces.append(frame.f_globals)
    mod = sys.modules.get(getattr(type(target), "__module__", ""), None)
    if mod is not None:
        spaces.append(vars(mod))
    for space in spaces[:256]:
        for v in _values(space):
            if _owns(v):
                return True
    return False


# --------------------------------------------------------------------------
# Tracking containers
# --------------------------------------------------------------------------

def _report_mutation(container: Any, op: str) -> None:
    owner = getattr(container, "_sp_owner", None)
    if owner is None:
        return
    for checker in _tsc.active_checkers():
        checker._observe_write(owner, container._sp_attr, "mutation", op, sys._getframe(2))


def _tracking_method(orig: Callable, op: str) -> Callable:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _tsc._active:
            _report_mutation(self, op)
        return orig(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = op
    return method


def _tracking_class(base: type, ops: Tuple[str, ...], reducer: Callable) -> type:
    ns: Dict[str, Any] = {"__slots__": ("_sp_owner", "_sp_attr"),
                          "__reduce_ex__": lambda self, proto: reducer(self),
                          "__module__": __name__}
    for op in ops:
        ns[op] = _tracking_method(getattr(base, op), op)
    if base is set:
        ns["__repr__"] = lambda self: set.__repr__(set(self))
    return type("Tracked" + base.__name__.capitalize(), (base,), ns)


_TrackedList = _tracking_class(
    list, ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
           "__setitem__", "__delitem__", "__iadd__", "__imul__"),
    lambda self: (list, (list(self),)))
_TrackedDict = _tracking_class(
    dict, ("__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault",
           "__ior__"),
    lambda self: (dict, (dict(self),)))
_TrackedSet = _tracking_class(
    set, ("add", "discard", "remove", "pop", "clear", "update", "difference_update",
          "intersection_update", "symmetric_difference_update", "__ior__", "__iand__",
          "__isub__", "__ixor__"),
    lambda self: (set, (list(self),)))

_TRACKING = {list: _TrackedList, dict: _TrackedDict, set: _TrackedSet}
TRACKED_TYPES = (_TrackedList, _TrackedDict, _TrackedSet)


def _tracked_copy(value: Any, owner: Any, attr: str) -> Any:
    new = _TRACKING[type(value)](value)
    new._sp_owner = owner
    new._sp_attr = attr
    return new


# --------------------------------------------------------------------------
# The class hooks
# --------------------------------------------------------------------------

#: References a fresh value has inside _on_set (measured by _calibrate);
#: 0 disables container tracking (an interpreter where an alias cannot be told
#: from a fresh object at all).
_FRESH_REFS = 0
_FRESH_REFS_IN_DICT = 0
#: Local-variable loads borrow references here (CPython 3.14+): a value held by
#: a local has no more references than a fresh one, so _value_source decides.
_BORROWED_LOCALS = False

# Instructions that push a local variable (a borrowed reference on 3.14);
# LOAD_FAST_AND_CLEAR moves the reference out of the variable instead.
_LOCAL_LOADS = frozenset(n for n in dis.opmap if "LOAD_FAST" in n and not n.startswith("STORE")
                         and n != "LOAD_FAST_AND_CLEAR")
# Of those, the ones that push two locals (value and owner of a STORE_ATTR).
_LOCAL_PAIR_LOADS = frozenset(n for n in _LOCAL_LOADS if n.count("LOAD_FAST") == 2)
# One instruction that pushes the owner of the STORE_ATTR and pops nothing.
_OWNER_LOADS = frozenset(n for n in ("LOAD_FAST", "LOAD_FAST_BORROW", "LOAD_FAST_CHECK",
                                     "LOAD_DEREF", "LOAD_NAME") if n in dis.opmap)
_sources: Dict[Tuple[Any, int], str] = {}


def _classify_store(code: Any, offset: int) -> str:
    """Where the value stored by the STORE_ATTR at ``offset`` comes from:
    "local" (a local variable: an alias), "owned" (anything else: the stack
    holds its own reference, so the reference count tells), or "unknown"
    (another instruction, or paths that merge: do not track)."""
    instrs = list(dis.get_instructions(code))
    at = next((i for i, ins in enumerate(instrs) if ins.offset == offset), -1)
    if at < 2 or instrs[at].opname != "STORE_ATTR":
        return "unknown"
    owner = instrs[at - 1]
    if owner.is_jump_target:
        return "unknown"
    if owner.opname in _LOCAL_PAIR_LOADS:
        return "local"
    global_owner = owner.opname == "LOAD_GLOBAL" and not (owner.arg or 0) & 1  # no NULL pushed
    if owner.opname not in _OWNER_LOADS and not global_owner:
        return "unknown"
    return "local" if instrs[at - 2].opname in _LOCAL_LOADS else "owned"


def _value_source(frame: Any) -> str:
    """_classify_store for the instruction ``frame`` is executing, cached."""
    key = (frame.f_code, frame.f_lasti)
    source = _sources.get(key)
    if source is None:
        source = _sources[key] = _classify_store(*key)
    return source


def _fresh(value: Any, frame: Any) -> bool:
    """Whether nothing but the assignment running in ``frame`` refers to
    ``value``. Called from _on_set; _calibrate counts at the same depth."""
    if not _FRESH_REFS or _getrefcount(value) > _FRESH_REFS:
        return False
    return not _BORROWED_LOCALS or _value_source(frame) == "owned"


def _on_set(obj: Any, name: str, value: Any) -> Any:
    """Called by the installed ``__setattr__`` while a checker is active.
    Returns the value to store (a tracking lock or container, or ``value``)."""
    t = type(value)
    if t in _TRACKING:
        if not name.startswith("_sp_") and _fresh(value, sys._getframe(2)):
            value = _tracked_copy(value, obj, name)
    elif t is _LOCK_TYPE or t is _RLOCK_TYPE:
        if not name.startswith("_sp_") or name == "_sp_lock":
            value = track_lock(value)
    if name.startswith("_sp_"):
        return value
    try:
        if vars(obj).get(name, _MISSING) is value:
            return value            # `self.items += [...]`: the mutation was reported
    except TypeError:
        pass
    frame = sys._getframe(2)
    for checker in _tsc.active_checkers():
        checker._observe_write(obj, name, "write", None, frame)
    return value


_calibration_refs = 0
_calibration_source = ""


def _calibrating_set(obj: Any, name: str, value: Any) -> Any:
    # Same frame depth and argument passing as _on_set.
    global _calibration_refs, _calibration_source
    _calibration_refs = _refs_one_frame_down(value)
    _calibration_source = _classify_store(sys._getframe(2).f_code, sys._getframe(2).f_lasti)
    return value


def _refs_one_frame_down(value: Any) -> int:
    # _fresh reads the count one call deeper than _on_set; so does this.
    return _getrefcount(value)


_MISSING = object()
_UNHOOKABLE = (None, None)     # _watched value of a class that refused the hooks
_hook_body: Callable[[Any, str, Any], Any] = _on_set


def _make_setattr(base_setattr: Callable) -> Callable:
    base_setattr = getattr(base_setattr, "_sp_base", base_setattr)   # a watched base class

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if _tsc._active:
            value = _hook_body(self, name, value)
        base_setattr(self, name, value)

    __setattr__._sp_base = base_setattr  # type: ignore[attr-defined]
    return __setattr__


def _make_delattr(base_delattr: Callable) -> Callable:
    base_delattr = getattr(base_delattr, "_sp_base", base_delattr)

    def __delattr__(self: Any, name: str) -> None:
        if _tsc._active and not name.startswith("_sp_"):
            frame = sys._getframe(1)
            for checker in _tsc.active_checkers():
                checker._observe_write(self, name, "delete", None, frame)
        base_delattr(self, name)

    __delattr__._sp_base = base_delattr  # type: ignore[attr-defined]
    return __delattr__


_watch_mu = threading.Lock()
#: Watched classes -> their own __setattr__/__delattr__ before (or _MISSING).
#: A plain dict (classes are few and long-lived): membership is checked on
#: every tracked call.
_watched: Dict[type, Tuple[Any, Any]] = {}
_watched_instances: "weakref.WeakSet[Any]" = weakref.WeakSet()


def is_watched(cls: type) -> bool:
    return cls in _watched


def watch_class(cls: type) -> bool:
    """Install the write hooks on ``cls`` (idempotent). Instances created
    afterwards get tracking locks and containers from their ``__init__``.
    Returns False for classes that cannot take the hooks."""
    if cls in _watched:
        return _watched[cls] is not _UNHOOKABLE
    with _watch_mu:
        if cls in _watched:
            return _watched[cls] is not _UNHOOKABLE
        own = cls.__dict__
        prev = (own.get("__setattr__", _MISSING), own.get("__delattr__", _MISSING))
        try:
            cls.__setattr__ = _make_setattr(cls.__setattr__)
            cls.__delattr__ = _make_delattr(cls.__delattr__)
        except (TypeError, AttributeError):
            _watched[cls] = _UNHOOKABLE     # do not try again on every call
            return False
        _watched[cls] = prev
    return _watched[cls] is not _UNHOOKABLE


def unwatch_class(cls: type) -> None:
    """Remove the hooks :func:`watch_class` installed (tests use this)."""
    with _watch_mu:
        prev = _watched.pop(cls, None)
        if prev is None or prev is _UNHOOKABLE:
            return
        for name, old in zip(("__setattr__", "__delattr__"), prev):
            if old is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, old)


def _fresh_in_dict(space: Dict[str, Any], name: str) -> bool:
    return bool(_FRESH_REFS_IN_DICT) and _getrefcount(space[name]) <= _FRESH_REFS_IN_DICT


def watch_instance(obj: Any, containers: bool = True) -> None:
    """Watch ``type(obj)`` and convert the locks (and, with ``containers``,
    the unaliased lists/dicts/sets) already stored on ``obj``. Converting
    containers is only safe before other threads use the object."""
    watch_class(type(obj))
    with _watch_mu:             # two first calls may race to watch the same instance
        try:
            if obj in _watched_instances:
                return
            _watched_instances.add(obj)
            space = vars(obj)
        except TypeError:
            return
    for name in list(space):
        value = space.get(name)
        t = type(value)
        if t is _LOCK_TYPE or t is _RLOCK_TYPE:
            if not name.startswith("_sp_") or name == "_sp_lock":
                space[name] = track_lock(value)
        elif containers and t in _TRACKING and not name.startswith("_sp_"):
            del value
            if _fresh_in_dict(space, name):
                space[name] = _tracked_copy(space[name], obj, name)


def watch_module_locks(module: Any) -> None:
    """Wrap the Lock/RLock globals of ``module`` so holding them counts."""
    space = getattr(module, "__dict__", None)
    if not isinstance(space, dict):
        return
    for name, value in list(space.items()):
        if type(value) is _LOCK_TYPE or type(value) is _RLOCK_TYPE:
            space[name] = track_lock(value)


def _calibrate() -> None:
    """Measure how many references a fresh value has inside the hook, and
    check that an aliased one has more; otherwise leave tracking off."""
    global _FRESH_REFS, _FRESH_REFS_IN_DICT, _BORROWED_LOCALS, _hook_body

    class Probe:
        pass

    def probe_setattr(self: Any, name: str, value: Any) -> None:
        # The shape of _make_setattr's hook, without the "checker active?" test.
        value = _hook_body(self, name, value)
        _object_setattr(self, name, value)

    Probe.__setattr__ = probe_setattr
    p = Probe()
    holder = types.SimpleNamespace(v=[])
    _hook_body = _calibrating_set
    try:
        p.x = []
        fresh, fresh_src = _calibration_refs, _calibration_source
        alias = []
        p.x = alias
        aliased, alias_src = _calibration_refs, _calibration_source
        p.x = [i for i in range(3)]
        comp, comp_src = _calibration_refs, _calibration_source
        p.x = holder.v
        held = _calibration_refs
    finally:
        _hook_body = _on_set
    if aliased > fresh and comp <= fresh:
        _FRESH_REFS = fresh
    elif (aliased == fresh and comp <= fresh and held > fresh
          and (fresh_src, alias_src, comp_src) == ("owned", "local", "owned")):
        # Borrowed local loads: the count still tells a value held elsewhere
        # (an attribute, a global, a container), the instruction tells a local.
        _FRESH_REFS = fresh
        _BORROWED_LOCALS = True
    space = {"fresh": [], "alias": alias}
    f_refs = _getrefcount(space["fresh"])
    a_refs = _getrefcount(space["alias"])
    if a_refs > f_refs:
        _FRESH_REFS_IN_DICT = f_refs
        if _getrefcount(space["fresh"]) != f_refs:   # pragma: no cover - paranoia
            _FRESH_REFS_IN_DICT = 0
    # _fresh_in_dict calls getrefcount one frame deeper, with the same stack shape.
    probe = {"v": []}
    if _FRESH_REFS_IN_DICT and not _fresh_in_dict(probe, "v"):
        _FRESH_REFS_IN_DICT = 0
    probe["w"] = probe["v"]
    if _FRESH_REFS_IN_DICT and _fresh_in_dict(probe, "v"):
        _FRESH_REFS_IN_DICT = 0


_calibrate()


def container_tracking_available() -> bool:
    """True when fresh containers can be told from aliased ones here."""
    return bool(_FRESH_REFS)
