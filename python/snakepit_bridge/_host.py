"""Glue between the C worker (``snakepit-worker``) and an adapter. Private.

The worker embeds CPython and drives exactly this interface::

    preload(adapter_spec, pool, profile, threads)   # optional: import only (fork server)
    preload_instance(adapter_args)   # optional (preload): build the adapter once, gc.freeze()
    choose_profile(adapter_spec, pool)   # worker_profile: auto, in a probe process
    host = load(adapter_spec, adapter_args, worker_id, pool, profile, threads)
    host.manifest()                  # JSON text describing the tools (HELLO frame)
    host.register_thread(name)       # once on each execution thread, GIL held
    host.invoke(tool, args_json[, arrays, lists])
                                     # -> (status, payload[, arrays]); never raises
    host.report(args_json)           # this worker's report as JSON text; never raises
    host.shutdown()                  # adapter.close() / cleanup(); never raises

``invoke`` statuses:

* 0 -- ok; payload is the result as JSON text. Arrays (NumPy ndarrays, bytes,
  bytearray, memoryview) anywhere in it leave ``{"$array": INDEX}`` and come
  as a third item, their descriptors (see _arrays.export); with ``lists``
  true, ndarrays become nested lists instead. NumPy scalars become Python
  numbers, sets/tuples lists, generators lists of their items; non-finite
  floats (NaN, +-inf) become ``null`` so the text is always standard JSON. The
  text is ASCII (non-ASCII characters are ``\\u`` escaped).
* 1 -- the arguments do not fit the tool (not an object, missing / unknown /
  mistyped argument); payload is a one-line message.
* 2 -- the tool raised (any BaseException, SystemExit included), or its result
  could not be serialized; payload is JSON ``{"type", "message", "traceback"}``.
* 3 -- unknown tool; payload is a one-line message.
* 4 -- the arguments are not valid JSON; payload is a one-line message.

Everything per tool (signature, required names, type checks) is computed once in
``load``; ``invoke`` only does dictionary lookups, so it is safe to call from
many threads at once and costs a few microseconds for a no-op tool. Host state
is read-only after ``load`` (shutdown is guarded by a lock).
"""

from __future__ import annotations

import gc
import importlib
import inspect
import json
import logging
import math
import os
import sys
import sysconfig
import threading
import time
import traceback
import types
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _arrays
from . import _compat
from . import _doctor
from . import context as _context
from . import thread_safety_checker as _tsc
from .base_adapter import iter_tools

__all__ = ["preload", "preload_instance", "choose_profile", "decide_profile", "load", "Host"]

logger = logging.getLogger("snakepit_bridge.host")

STATUS_OK = 0
STATUS_INVALID = 1
STATUS_ERROR = 2
STATUS_NO_TOOL = 3
STATUS_BAD_JSON = 4
STATUS_STREAM = 5   # invoke(stream=True): the payload is the iterator to stream
STATUS_END = 6      # stream_next: the iterator is exhausted

_MISSING = object()
_EMPTY = inspect.Parameter.empty


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------

def _json_default(o: Any) -> Any:
    np = sys.modules.get("numpy")
    if _arrays.is_array(o):
        col = _arrays.collecting()
        if col is not None:             # a result's array: it travels in binary
            col.append(o)
            return {"$array": len(col) - 1}
        if not _arrays.as_lists():
            raise _arrays.HasArrays()   # encode again, collecting (see Host.invoke)
        if np is not None and isinstance(o, np.ndarray):
            return o.tolist()
        return list(bytes(o))           # bytes-like: a list of byte values, as uint8 arrays
    if np is not None:
        if isinstance(o, np.generic):
            return o.item()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, types.GeneratorType):
        return list(o)
    if isinstance(o, types.AsyncGeneratorType):
        return list(_drive_async(o))
    return _compat.json_fallback(o)     # chunk objects; Snakepit adapters' conversions


_ENCODER = json.JSONEncoder(default=_json_default, allow_nan=False, separators=(",", ":"))
_encode = _ENCODER.encode


def _make_fast_encoder() -> Any:
    # JSONEncoder.encode() builds a C encoder on every call; build one once.
    # No circular-reference markers: a cyclic result hits the recursion limit
    # (RecursionError) instead. The encoder object keeps no per-call state, so
    # threads share it. Falls back to JSONEncoder.encode if the private C
    # constructor is missing or behaves differently.
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii
        if c_make_encoder is None or encode_basestring_ascii is None:
            return _encode
        c_enc = c_make_encoder(None, _json_default, encode_basestring_ascii, None,
                               ":", ",", False, False, False)
        join = "".join

        def fast(o: Any) -> str:
            if isinstance(o, str):
                return encode_basestring_ascii(o)
            return join(c_enc(o, 0))

        sample = {"a": [1, 2.5, "x\u00e9", None, True, (3,)], "b": {"c": {1}}}
        if fast(sample) != _encode(sample):
            return _encode
        return fast
    except Exception:
        return _encode


_encode = _make_fast_encoder()
_decode = json.JSONDecoder().decode


def _finite(o: Any, depth: int = 0) -> Any:
    """Copy of ``o`` with non-finite floats replaced by None (slow path)."""
    if depth > 500:
        raise RecursionError("result is nested too deeply")
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v, depth + 1) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v, depth + 1) for v in o]
    if isinstance(o, (str, int)) or o is None:
        return o
    try:
        converted = _json_default(o)
    except TypeError:
        return o
    return _finite(converted, depth + 1)


def to_json(value: Any) -> str:
    """Serialize a value as JSON text the way :meth:`Host.invoke` does for a
    caller that wants JSON only (NumPy arrays become nested lists)."""
    try:
        return _encode(value)
    except _arrays.HasArrays:
        return _arrays.encode_as_lists(to_json, value)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        col = _arrays.collecting()
        if col is not None:
            col.clear()                 # the failed attempt's arrays: collected again below
        try:
            return _encode(_finite(value))
        except _arrays.HasArrays:
            return _arrays.encode_as_lists(to_json, value)


def _shown(name: Any) -> str:
    """A caller-supplied name, safe to embed in a one-line message."""
    text = name if isinstance(name, str) else repr(name)
    if len(text) > 200:
        text = text[:200] + "..."
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text


def _type_label(v: Any) -> str:
    if v is None:
        return "null"
    return type(v).__name__


def _exc_type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


_SDK_FILES = frozenset(
    os.path.join(d, f)
    for d in (os.path.dirname(__file__), os.path.dirname(os.path.abspath(__file__)))
    for f in ("_host.py", "_compat.py", "base_adapter_threaded.py", "thread_safety_checker.py"))


def _user_traceback(tb: Any) -> Any:
    """Skip the SDK's own leading frames (host, wrappers) so the traceback
    starts at the adapter's code; keep everything if nothing else is left."""
    start = tb
    while tb is not None and tb.tb_frame.f_code.co_filename in _SDK_FILES:
        tb = tb.tb_next
    return tb if tb is not None else start


def _error_payload(exc: BaseException, tb: Any = _MISSING, message: Optional[str] = None) -> str:
    try:
        if message is None:
            try:
                message = str(exc)
            except BaseException:
                message = f"<unprintable {type(exc).__name__}>"
        if tb is _MISSING:
            tb = exc.__traceback__
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return json.dumps({"type": _exc_type_name(exc), "message": message, "traceback": text})
    except BaseException:
        return '{"type":"Exception","message":"error while reporting an error","traceback":""}'


# --------------------------------------------------------------------------
# Parameter types
# --------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_PLAIN: Dict[Any, Tuple[str, Callable[[Any], bool]]] = {
    int: ("int", _is_int),
    float: ("float", _is_float),
    str: ("str", lambda v: isinstance(v, str)),
    bool: ("bool", lambda v: isinstance(v, bool)),
    list: ("list", lambda v: isinstance(v, list)),
    dict: ("dict", lambda v: isinstance(v, dict)),
}

_UNION_TYPES: tuple = (typing.Union,) + ((types.UnionType,) if hasattr(types, "UnionType") else ())


def _classify(ann: Any) -> Tuple[str, Optional[Callable[[Any], bool]], bool]:
    """Map an annotation to (manifest type, validator or None, None allowed)."""
    if ann is _EMPTY or ann is typing.Any or isinstance(ann, str):
        return "any", None, False
    try:
        plain = _PLAIN.get(ann)
    except TypeError:           # unhashable annotation
        plain = None
    if plain is not None:
        return plain[0], plain[1], False
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _classify(typing.get_args(ann)[0])
    if origin in _UNION_TYPES:
        members = typing.get_args(ann)
        rest = [a for a in members if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(members):
            name, check, _ = _classify(rest[0])
            return name, check, True
        return "any", None, False
    if origin in (list, dict):
        return _PLAIN[origin][0], _PLAIN[origin][1], False
    if ann in (tuple, set, frozenset) or origin in (tuple, set, frozenset):
        return "list", None, False
    return "any", None, False


def _json_value(default: Any) -> Any:
    try:
        return json.loads(to_json(default))
    except Exception:
        return repr(default)


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------

class _Tool:
    """Everything ``invoke`` needs about one tool, computed at load time."""

    __slots__ = ("name", "fn", "is_async", "simple", "names", "names_text", "required",
                 "checks", "var_kw", "posonly", "manifest")

    def __init__(self, name: str, fn: Callable, meta: Dict[str, Any]) -> None:
        self.name = name
        self.fn = fn
        target = inspect.unwrap(fn)
        self.is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn)
        sig = inspect.signature(fn)
        fn_globals = getattr(target, "__globals__", {})
        params: List[Dict[str, Any]] = []
        names: List[str] = []
        required: List[str] = []
        checks = []
        posonly = []
        self.var_kw = False
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                self.var_kw = True
                continue
            if p.kind is p.VAR_POSITIONAL:
                continue
            ann = p.annotation
            if isinstance(ann, str):        # postponed annotation: resolve each on its own
                try:
                    ann = eval(ann, fn_globals)  # noqa: S307 - adapter's own annotation text
                except Exception:
                    pass
            tname, check, allow_none = _classify(ann)
            entry: Dict[str, Any] = {"name": p.name, "type": tname, "required": p.default is _EMPTY}
            if p.default is _EMPTY:
                required.append(p.name)
            else:
                entry["default"] = _json_value(p.default)
                allow_none = allow_none or p.default is None
            if p.kind is p.POSITIONAL_ONLY:
                posonly.append((p.name, p.default))
            params.append(entry)
            names.append(p.name)
            if check is not None:
                checks.append((p.name, check, tname, allow_none))
        self.names = frozenset(names)
        self.names_text = ", ".join(names) if names else "none"
        self.required = tuple(required)
        self.checks = tuple(checks)
        self.posonly = tuple(posonly)
        self.simple = not self.posonly and not self.is_async
        self.manifest = {
            "name": name,
            "description": meta.get("description", "") or "",
            "supports_streaming": bool(meta.get("supports_streaming", False)),
            "parameters": params,
        }

    def validate(self, args: Dict[str, Any]) -> Optional[str]:
        """Return a one-line error message, or None when ``args`` bind."""
        if not self.var_kw:
            names = self.names
            for key in args:
                if key not in names:
                    return (f"unknown argument '{_shown(key)}' for tool '{self.name}' "
                            f"(parameters: {self.names_text})")
        for key in self.required:
            if key not in args:
                return f"missing required argument '{key}' for tool '{self.name}'"
        for key, check, tname, allow_none in self.checks:
            v = args.get(key, _MISSING)
            if v is _MISSING or (v is None and allow_none) or check(v):
                continue
            return f"argument '{key}' of tool '{self.name}' must be {tname}, got {_type_label(v)}"
        return None

    def call(self, args: Dict[str, Any]) -> Any:
        if self.posonly:
            positional = []
            pending = []
            for pname, pdefault in self.posonly:
                if pname in args:
                    positional.extend(pending)
                    pending.clear()
                    positional.append(args.pop(pname))
                else:
                    pending.append(pdefault)
            result = self.fn(*positional, **args)
        else:
            result = self.fn(**args)
        if self.is_async and inspect.isawaitable(result):
            import asyncio  # only adapters with async tools pay its ~20 ms import

            result = asyncio.run(_await(result))
        return result


async def _await(aw: Any) -> Any:
    return await aw


def _stream_items(result: Any) -> Any:
    """What a streaming call yields: a generator's items, an async
    generator's items (each awaited on an event loop of the stream's own), or
    a plain result as the one and only chunk."""
    if isinstance(result, types.GeneratorType):
        return result
    if isinstance(result, types.AsyncGeneratorType):
        return _drive_async(result)
    return iter((result,))


async def _anext(agen: Any) -> Any:
    return await agen.__anext__()


def _drive_async(agen: Any) -> Any:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        while True:
            step = loop.create_task(_anext(agen))
            try:
                item = loop.run_until_complete(step)
            except StopAsyncIteration:
                return
            except BaseException:
                # Interrupted inside an await (a cancellation): the generator
                # gets CancelledError there, so its finally blocks run.
                if not step.done():
                    step.cancel()
                    try:
                        loop.run_until_complete(step)
                    except BaseException:   # noqa: BLE001 - the first exception wins
                        pass
                raise
            yield item
    finally:
        # Closed early (GeneratorExit) or not: aclose() runs its finally blocks.
        try:
            loop.run_until_complete(agen.aclose())
        finally:
            loop.close()


# --------------------------------------------------------------------------
# Host
# --------------------------------------------------------------------------

class Host:
    """One loaded adapter instance and its tools (see the module docstring).

    :meth:`report` answers the manager's STATS request: who this worker is,
    its live GIL state and, with thread-safety checks on (``checks`` is "on"
    or "strict"), the checker's findings (``snakepit stats`` and ``snakepit
    check`` merge them over every worker).
    """

    def __init__(self, adapter: Any, spec: str, worker_id: str = "", pool: str = "",
                 profile: str = "process", threads: int = 1,
                 checks: Optional[str] = None, baseline_modules: Any = ()) -> None:
        self.adapter = adapter
        self.spec = spec
        self.worker_id = worker_id
        self.pool = pool
        self.profile = profile
        self.threads = threads
        self.checks = checks
        self._stagger = _stagger_seconds() if checks else 0.0
        self._baseline_modules = frozenset(baseline_modules)
        self.tools: Dict[str, _Tool] = {}
        for name, fn, meta in iter_tools(adapter):
            self.tools[name] = _Tool(name, fn, meta)
        _compat.extend_tools(adapter, self.tools, _Tool)   # tools behind execute_tool
        self._available = ", ".join(sorted(self.tools)) or "none"
        thread_safe = getattr(type(adapter), "__thread_safe__", None)
        self._manifest = json.dumps({
            "adapter": spec,
            "thread_safe": thread_safe if isinstance(thread_safe, bool) else None,
            "tools": [t.manifest for _, t in sorted(self.tools.items())],
            # So that calling one says it needs @tool, not just "unknown tool".
            "methods_without_tool": _methods_without_tool(adapter, self.tools),
        })
        # The GIL as the adapter's imports left it (`snakepit doctor` reports it).
        self._gil_after_load = _doctor.gil_enabled()
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    def manifest(self) -> str:
        """JSON text: adapter spec, thread_safe (bool or null) and tools."""
        return self._manifest

    def report(self, args_json: Any = "{}") -> str:
        """This worker's report as JSON text (the manager's STATS request).

        ``args_json``: a JSON object; ``{"reset": true}`` starts the checker's
        next report afresh. Never raises: a failure is reported in the text
        as ``{"error": ...}``.
        """
        try:
            args = json.loads(args_json) if args_json else {}
            if not isinstance(args, dict):
                raise ValueError("report arguments must be a JSON object")
            reset = bool(args.get("reset", False))
            gil = getattr(sys, "_is_gil_enabled", None)
            out: Dict[str, Any] = {
                "worker_id": self.worker_id, "pool": self.pool, "pid": os.getpid(),
                "python_version": sys.version.split()[0],
                "gil_enabled": bool(gil()) if gil is not None else True,
                "profile": self.profile, "threads": self.threads,
                "thread_safety": self._thread_safety_report(reset) if self.checks else None,
                # Facts about this worker's Python, for `snakepit doctor`.
                "environment": _doctor.facts(self._baseline_modules, self._gil_after_load),
            }
            return to_json(out)
        except BaseException as exc:
            return json.dumps({"worker_id": self.worker_id, "pid": os.getpid(),
                               "error": f"{type(exc).__name__}: {exc}"})

    def _thread_safety_report(self, reset: bool = False) -> Dict[str, Any]:
        """The global checker's report plus who this worker is and which
        libraries of the compatibility table the adapter brought in."""
        checker = _tsc.get_global_checker()
        report = checker.get_report_dict()
        if reset:
            checker.reset()
        gil = getattr(sys, "_is_gil_enabled", None)
        cls = type(self.adapter)
        declared = getattr(cls, "__thread_safe__", None)
        report.update({
            "worker_id": self.worker_id, "pool": self.pool, "pid": os.getpid(),
            "adapter": self.spec, "adapter_class": cls.__name__,
            "thread_safe": declared if isinstance(declared, bool) else None,
            "profile": self.profile, "threads": self.threads, "checks": self.checks,
            "python_version": sys.version.split()[0],
            "gil_enabled": bool(gil()) if gil is not None else True,
            "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            "imported_libraries": _tsc.loaded_libraries(exclude=self._baseline_modules),
        })
        return report

    def register_thread(self, name: str) -> None:
        """Give the calling (C-created) thread a Python identity named ``name``."""
        threading.current_thread().name = str(name)
        _context.current()

    def invoke(self, tool: str, args_json: Any, arrays: Any = None,
               lists: bool = False, stream: bool = False) -> Tuple[Any, ...]:
        """Run ``tool`` with the JSON-object arguments and the array arguments
        ((name, dtype, shape, buffer) tuples). Never raises. With ``stream``
        the outcome is (STATUS_STREAM, iterator) for :meth:`stream_next`."""
        try:
            t = self.tools.get(tool)
            if t is None:
                return STATUS_NO_TOOL, f"unknown tool '{_shown(tool)}' (available: {self._available})"
            if args_json == "{}" or not args_json:
                args: Any = {}
            else:
                try:
                    if isinstance(args_json, str):
                        args = _decode(args_json)
                    else:
                        args = json.loads(args_json)
                # TypeError: not text at all. RecursionError: nested deeper than
                # the interpreter recurses (the manager refuses past 512 levels
                # first; a frame sent to the worker directly meets this).
                except (ValueError, TypeError, RecursionError) as exc:
                    return STATUS_BAD_JSON, f"arguments are not valid JSON: {exc}"
                if type(args) is not dict:
                    return STATUS_INVALID, f"arguments must be a JSON object, got {_type_label(args)}"
            if arrays:
                for name, dtype, shape, buf in arrays:
                    if name in args:
                        return STATUS_INVALID, (f"argument '{_shown(name)}' of tool '{tool}' is "
                                                f"given both in JSON and as an array")
                    args[name] = _arrays.make_input(dtype, shape, buf)
            if args or t.required:
                err = t.validate(args)
                if err is not None:
                    return STATUS_INVALID, err
            _context._begin(tool)
            try:
                if t.simple and not _tsc._active:
                    result = t.fn(**args)
                elif _tsc._active:
                    with _tsc.track_all(tool, self.adapter):
                        if self._stagger:
                            time.sleep(self._stagger)
                        result = t.call(args)
                else:
                    result = t.call(args)
            except BaseException as exc:
                return STATUS_ERROR, _error_payload(exc, _user_traceback(exc.__traceback__))
            if stream:
                return STATUS_STREAM, _stream_items(result)
            try:
                if lists:
                    return STATUS_OK, _arrays.encode_as_lists(to_json, result)
                try:
                    return STATUS_OK, _encode(result)
                except (_arrays.HasArrays, ValueError):
                    # Arrays in the result, or non-finite floats: the slow path.
                    text, col = _arrays.encode_collecting(to_json, result)
                if col:
                    return STATUS_OK, text, _arrays.export(result, col, tool)
                return STATUS_OK, text
            except _arrays.UnsharableArray as exc:
                return STATUS_ERROR, _error_payload(exc, None)
            except (TypeError, ValueError, RecursionError) as exc:
                return STATUS_ERROR, _error_payload(
                    TypeError(str(exc)), None,
                    f"result of tool '{tool}' is not JSON serializable: {exc}")
            except BaseException as exc:    # raised by a generator result, etc.
                return STATUS_ERROR, _error_payload(exc)
        except BaseException as exc:
            return STATUS_ERROR, _error_payload(exc)
        finally:
            if _arrays.used_output:
                _arrays.end_call()

    def stream_next(self, items: Any) -> Tuple[int, str]:
        """The next chunk of a stream as (STATUS_OK, JSON text), (STATUS_END,
        "") once the generator returned, or (STATUS_ERROR, payload) when it
        raised (the chunks before stay delivered). Never raises."""
        try:
            item = next(items)
        except StopIteration:
            return STATUS_END, ""
        except BaseException as exc:
            return STATUS_ERROR, _error_payload(exc, _user_traceback(exc.__traceback__))
        try:
            try:
                return STATUS_OK, _encode(item)
            except (ValueError, _arrays.HasArrays):
                # Non-finite floats, or arrays: a chunk is JSON text, so its
                # arrays (and bytes) become nested lists.
                return STATUS_OK, to_json(item)
        except BaseException as exc:
            return STATUS_ERROR, _error_payload(
                TypeError(str(exc)), None, f"a chunk is not JSON serializable: {exc}")

    @staticmethod
    def stream_close(items: Any) -> None:
        """Closes a stream that ends early (cancelled, deadline, consumer
        gone): GeneratorExit at its ``yield`` runs its finally blocks."""
        close = getattr(items, "close", None)
        if close is not None:
            try:
                close()
            except BaseException:   # noqa: BLE001 - a failing finally must not kill the thread
                pass

    def shutdown(self) -> None:
        """Call the adapter's ``close()`` and ``cleanup()`` (each at most once,
        only if defined). Never raises; errors are logged."""
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        seen = set()
        for attr in ("close", "cleanup"):
            try:
                fn = getattr(self.adapter, attr, None)
                if not callable(fn):
                    continue
                key = getattr(fn, "__func__", fn)
                if key in seen:
                    continue
                seen.add(key)
                _compat.settle(fn())    # sync or async
            except BaseException:
                try:
                    logger.error("adapter %s.%s() failed:\n%s", self.spec, attr, traceback.format_exc())
                except BaseException:
                    pass


def _resolve(adapter_spec: str) -> Any:
    if not isinstance(adapter_spec, str) or not adapter_spec.strip():
        raise ValueError(f"adapter spec must be 'package.module.Class', got {adapter_spec!r}")
    spec = adapter_spec.strip()
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
    else:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"adapter spec must be 'package.module.Class', got {adapter_spec!r}")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError(f"module '{module_name}' has no adapter class '{attr}' "
                                 f"(adapter spec {adapter_spec!r})") from None
    return obj


def _methods_without_tool(adapter: Any, tools: Dict[str, Any]) -> List[str]:
    """Public methods the adapter's own classes define without @tool (the SDK's
    base classes' helpers, such as acquire_lock, are not meant to be called)."""
    names = set()
    for klass in type(adapter).__mro__:
        if klass is object or klass.__module__.startswith("snakepit_bridge.") and \
                not klass.__module__.startswith("snakepit_bridge.adapters"):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") or name in tools:
                continue
            if isinstance(raw, (staticmethod, classmethod)) or inspect.isfunction(raw):
                names.add(name)
    return sorted(names)


def _construct(cls: Any, adapter_args: List[Any]) -> Any:
    target = cls.__init__ if isinstance(cls, type) else cls
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}
    if "adapter_args" in params:
        return cls(adapter_args=list(adapter_args or []))
    if adapter_args:
        # Dropping them silently would hide a configuration that does nothing.
        print(f"warning: adapter_args {list(adapter_args)!r} ignored: "
              f"{getattr(cls, '__qualname__', cls)}.__init__ has no adapter_args parameter "
              f"(define __init__(self, adapter_args=None) to receive them)",
              file=sys.stderr, flush=True)
    return cls()


def _checking_mode() -> Optional[str]:
    value = os.environ.get("SNAKEPIT_THREAD_SAFETY_CHECK", "").strip().lower()
    if value in ("strict",):
        return "strict"
    if value in ("1", "true", "yes", "on"):
        return "on"
    return None


# With checks on, every call pauses this long once it counts as running. On a
# GIL build, microsecond-long calls otherwise run one after the other and the
# write detector never sees two of them overlap; with the pause, calls queued
# behind it start too, as on a free-threaded build. Checks are a debugging mode,
# so they catch races by default; SNAKEPIT_THREAD_SAFETY_STAGGER_US changes the
# pause (0: none).
DEFAULT_STAGGER_US = 200.0


def _stagger_seconds() -> float:
    value = os.environ.get("SNAKEPIT_THREAD_SAFETY_STAGGER_US", "").strip()
    if not value:
        return DEFAULT_STAGGER_US / 1e6
    try:
        return max(0.0, min(float(value), 1e6)) / 1e6
    except ValueError:
        logger.warning("ignoring SNAKEPIT_THREAD_SAFETY_STAGGER_US=%r", value)
        return DEFAULT_STAGGER_US / 1e6


class _Preloaded:
    """What :func:`preload` prepared: the adapter class and the checker state."""

    def __init__(self, spec: str, cls: Any, mode: Optional[str], checker: Any,
                 baseline: Any) -> None:
        self.spec = spec
        self.cls = cls
        self.mode = mode
        self.checker = checker
        self.baseline = baseline
        self.instance: Any = None       # built by preload_instance (preload)


_preloaded: Optional[_Preloaded] = None


def preload(adapter_spec: str, pool: str, profile: str, threads: int) -> _Preloaded:
    """Import the adapter's module and resolve its class, without building it.

    A fork server calls this once; every worker forked from it then only runs
    :func:`load`, which builds the instance from the class resolved here.
    Exports ``SNAKEPIT_THREADS``, ``SNAKEPIT_POOL`` and ``SNAKEPIT_PROFILE``
    and enables the thread-safety checker (see :func:`load`) before the
    import. Import errors propagate to the caller.
    """
    global _preloaded
    threads = int(threads) if threads else 1
    os.environ["SNAKEPIT_THREADS"] = str(threads)
    os.environ["SNAKEPIT_POOL"] = str(pool)
    os.environ["SNAKEPIT_PROFILE"] = str(profile)
    mode = _checking_mode()
    baseline = frozenset(sys.modules)
    _tsc.plain_warnings()
    checker = None
    if mode:
        checker = _tsc.enable_checking(strict_mode=(mode == "strict"))
        checker.strict_overlap = False      # overlapping calls are what a pool is for

    cls = _resolve(adapter_spec)
    if profile == "thread" and threads > 1 and isinstance(cls, type):
        try:
            _tsc.get_global_checker().check_adapter(cls)
        except _tsc.ThreadSafetyError as exc:
            raise _tsc.ThreadSafetyError(
                f"{exc}\n  Strict thread-safety checks (SNAKEPIT_THREAD_SAFETY_CHECK=strict) "
                f"refuse to start {adapter_spec} in the thread profile ({threads} threads) "
                f"without this declaration.") from None
    _preloaded = _Preloaded(adapter_spec, cls, mode, checker, baseline)
    return _preloaded


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if callable(check) else True


def decide_profile(cls: Any, gil_enabled: bool, libraries: List[Dict[str, Any]]) -> Tuple[str, str]:
    """``worker_profile: auto``: ``("thread", why)`` when the interpreter runs
    without the GIL, ``cls`` declares ``__thread_safe__ = True`` and none of
    ``libraries`` (entries of :func:`thread_safety_checker.loaded_libraries`:
    what the adapter's module imported) is flagged unsafe by the compatibility
    table; ``("process", why)`` otherwise. ``why`` is one sentence."""
    name = getattr(cls, "__qualname__", str(cls))
    if gil_enabled:
        build = "a free-threaded build with the GIL re-enabled" \
            if sysconfig_free_threaded() else "a build with the GIL"
        return "process", (f"Python {sys.version.split()[0]} is {build}: threads would take turns, "
                           f"processes run in parallel")
    if getattr(cls, "__thread_safe__", None) is not True:
        return "process", f"{name} does not declare __thread_safe__ = True"
    unsafe = [lib for lib in libraries if lib.get("status") == "unsafe"]
    if unsafe:
        names = ", ".join(f"{lib['library']} ({lib.get('reason') or 'not thread-safe'})"
                          for lib in unsafe)
        return "process", f"{name} imports a library flagged thread-unsafe: {names}"
    return "thread", (f"Python {sys.version.split()[0]} runs without the GIL, {name} declares "
                      f"__thread_safe__ = True and imports no library flagged thread-unsafe")


def sysconfig_free_threaded() -> bool:
    import sysconfig
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def choose_profile(adapter_spec: str, pool: str) -> str:
    """Import the adapter's module (as a fork server would) and decide
    ``worker_profile: auto`` for it; returns JSON ``{profile, reason,
    gil_enabled, free_threaded_build}``. Import errors propagate."""
    pre = preload(adapter_spec, pool, "process", 1)
    libraries = _tsc.loaded_libraries(exclude=pre.baseline)
    gil = _gil_enabled()
    profile, reason = decide_profile(pre.cls, gil, libraries)
    return json.dumps({"profile": profile, "reason": reason, "gil_enabled": gil,
                       "free_threaded_build": sysconfig_free_threaded()})


def _build(pre: _Preloaded, adapter_args: List[Any]) -> Any:
    if pre.checker is not None and isinstance(pre.cls, type):
        _tsc.watch_adapter_class(pre.cls)
    adapter = _construct(pre.cls, adapter_args)
    _compat.prepare(adapter)            # set_session_context(), before initialize()
    init = getattr(adapter, "initialize", None)
    if callable(init):
        _compat.settle(init())          # sync or async
    return adapter


def preload_instance(adapter_args: list) -> None:
    """Build the adapter once in the fork server (``preload``), after :func:`preload`.

    Every worker forked afterwards shares this instance, and everything it
    holds (model weights, NumPy buffers), copy-on-write: only pages a worker
    writes become its own. ``gc.freeze()`` moves every object built so far to
    the collector's permanent generation, so collections in the workers never
    write to them (which would copy the pages they live on). Constructor
    errors propagate to the caller.
    """
    pre = _preloaded
    if pre is None:
        raise RuntimeError("preload_instance() needs preload() first")
    pre.instance = _build(pre, adapter_args)
    gc.collect()
    gc.freeze()


def load(adapter_spec: str, adapter_args: list, worker_id: str, pool: str,
         profile: str, threads: int) -> Host:
    """Import ``adapter_spec`` ("pkg.module.Class"), build and initialize it.

    The constructor receives ``adapter_args=list`` if it has a parameter of
    that name, else no arguments; ``set_session_context()`` (with the live
    context, see _compat) and ``initialize()`` (sync or async) run next if
    defined.
    Import and construction errors propagate to the caller. When
    :func:`preload` already resolved this spec (a forked worker), its result
    is used once instead of importing again, and with preload the instance
    :func:`preload_instance` built there too. The adapter's ``post_fork()``,
    if it defines one, runs next in every worker (with preload or without), so
    per-worker resources have one place whatever the pool's settings; an
    exception from it fails the worker's start like a constructor error.

    The worker identity is exported as ``SNAKEPIT_THREADS``,
    ``SNAKEPIT_WORKER_ID``, ``SNAKEPIT_POOL`` and ``SNAKEPIT_PROFILE`` before
    the adapter is imported. ``SNAKEPIT_THREAD_SAFETY_CHECK=1`` (or
    ``strict``) enables the global thread-safety checker before the adapter
    module is imported (so its import hook sees the adapter's imports), and
    hooks the adapter class for the unlocked-write detector before the
    instance is built. A thread-profile adapter without
    ``__thread_safe__ = True`` is reported (raised in strict mode, so the
    pool refuses to start).
    """
    global _preloaded
    os.environ["SNAKEPIT_WORKER_ID"] = str(worker_id)
    pre = _preloaded
    _preloaded = None
    if pre is None or pre.spec != adapter_spec:
        pre = preload(adapter_spec, pool, profile, threads)
        _preloaded = None
    threads = int(threads) if threads else 1
    adapter = pre.instance if pre.instance is not None else _build(pre, adapter_args)
    # Per-worker setup (RNG seeds, sockets, files, GPU contexts): with preload
    # the constructor ran once in the fork server, so this is its place.
    post_fork = getattr(adapter, "post_fork", None)
    if callable(post_fork):
        post_fork()
    if pre.checker is not None:
        pre.checker.check_library_safety()      # imported before the hook was in place
    return Host(adapter, adapter_spec, worker_id, pool, profile, threads,
                checks=pre.mode, baseline_modules=pre.baseline)
