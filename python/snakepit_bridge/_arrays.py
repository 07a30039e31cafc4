"""Arrays between the worker and tools. Private.

A call's array arguments arrive as (name, dtype, shape, buffer) tuples: the
buffer is a read-only memoryview of the pool's shared input memory (no copy)
or bytes (arrays that travelled inline). :func:`make_input` turns each into a
``numpy.ndarray`` view, or a ``memoryview`` of that shape when NumPy is not
installed.

Arrays anywhere in a tool's result (ndarrays, bytes, bytearray, memoryview)
are collected while the result is encoded to JSON, where each leaves
``{"$array": INDEX}``; :func:`export` then places each in this worker's shared
output memory (or inline when it has no room) and describes it to the C side
as (name, dtype, shape, where, offset | buffer, nbytes). A tool can also
allocate its output in shared memory up front with :func:`output_array`
(``context.current().output_array``) and fill it in place: returning it then
costs no copy at all.

Views of the input memory are valid during the call: a tool that keeps an
input array beyond its call must copy it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

try:                                    # built into snakepit-worker
    import _snakepit_shm as _shm        # type: ignore
except ImportError:                     # the SDK used outside a worker
    _shm = None

__all__ = ["make_input", "output_array", "collecting", "export", "UnsharableArray"]

# sp_dtype_t codes (include/snakepit.h) and their NumPy and struct names.
_CODES = {
    1: ("bool", "?"), 2: ("int8", "b"), 3: ("int16", "h"), 4: ("int32", "i"),
    5: ("int64", "q"), 6: ("uint8", "B"), 7: ("uint16", "H"), 8: ("uint32", "I"),
    9: ("uint64", "Q"), 10: ("float16", "e"), 11: ("float32", "f"), 12: ("float64", "d"),
    13: ("complex64", None), 14: ("complex128", None),
}
_KIND_SIZE = {("b", 1): 1, ("i", 1): 2, ("i", 2): 3, ("i", 4): 4, ("i", 8): 5,
              ("u", 1): 6, ("u", 2): 7, ("u", 4): 8, ("u", 8): 9,
              ("f", 2): 10, ("f", 4): 11, ("f", 8): 12, ("c", 8): 13, ("c", 16): 14}
_BY_NAME = {name: code for code, (name, _) in _CODES.items()}

SHARED, INLINE = 1, 2
SUPPORTED = "bool, int8-64, uint8-64, float16/32/64, complex64/128"

_np: Any = None
_np_tried = False


def _numpy() -> Any:
    """NumPy if it can be imported (once), else None."""
    global _np, _np_tried
    if not _np_tried:
        _np_tried = True
        try:
            import numpy
            _np = numpy
        except Exception:
            _np = None
    return _np


class UnsharableArray(TypeError):
    """A result holds an array whose dtype cannot travel (object, strings, ...)."""


class HasArrays(Exception):
    """Raised by the JSON encoder's default hook when it meets an array and
    nothing collects them: the result is then encoded again, collecting.
    Results without arrays (nearly all) so pay nothing for arrays."""


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

def make_input(dtype: int, shape: Tuple[int, ...], buf: Any) -> Any:
    """An array argument: an ndarray over buf (read-only when buf is), else a memoryview."""
    name, fmt = _CODES[dtype]
    np = _numpy()
    if np is not None:
        return np.frombuffer(buf, dtype=name).reshape(shape)
    mv = memoryview(buf)
    if fmt is None:                     # complex: no struct format; raw bytes
        return mv
    try:
        return mv.cast(fmt, list(shape))
    except (TypeError, ValueError):     # shapes memoryview cannot express: raw bytes
        return mv


# --------------------------------------------------------------------------
# output memory allocated by the tool
# --------------------------------------------------------------------------

_local = threading.local()


def _call_blocks() -> Dict[int, int]:
    """Output blocks allocated by the running call: address -> offset."""
    blocks = getattr(_local, "blocks", None)
    if blocks is None:
        blocks = _local.blocks = {}
    return blocks


def output_array(shape: Any, dtype: Any = "float64") -> Any:
    """A writable array allocated in this worker's shared output memory.

    Fill it in place and return it (anywhere in the result): it reaches the
    caller without a copy. Falls back to ordinary memory when the output
    memory is full or outside a worker.
    """
    np = _numpy()
    shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if np is None:
        raise RuntimeError("output_array needs NumPy; return bytes or bytearray instead")
    dt = np.dtype(dtype)
    nbytes = dt.itemsize
    for s in shape:
        nbytes *= s
    got = _shm.alloc(nbytes) if _shm is not None and nbytes > 0 else None
    if got is None:
        return np.zeros(shape, dtype=dt)
    global used_output
    used_output = True
    off, mv = got
    arr = np.frombuffer(mv, dtype=dt).reshape(shape)
    _call_blocks()[arr.__array_interface__["data"][0]] = off
    return arr


#: Set once output_array was used in this process: only then do calls look
#: for blocks to free when they end.
used_output = False


def end_call() -> None:
    """Frees the output blocks of the finished call that no result took."""
    blocks = getattr(_local, "blocks", None)
    if blocks:
        for off in blocks.values():
            _shm.free(off)
        blocks.clear()


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------

def collecting() -> Optional[List[Any]]:
    """The list the JSON encoder appends arrays to on this thread, or None."""
    return getattr(_local, "collected", None)


def as_lists() -> bool:
    """Whether arrays become nested lists on this thread (see :func:`encode_as_lists`)."""
    return getattr(_local, "lists", False)


def encode_as_lists(encode: Any, result: Any) -> str:
    """encode(result), with ndarrays turned into nested lists."""
    _local.lists = True
    try:
        return encode(result)
    finally:
        _local.lists = False


def encode_collecting(encode: Any, result: Any) -> Tuple[str, List[Any]]:
    """encode(result), with every array it meets collected (see _host._json_default)."""
    col: List[Any] = []
    _local.collected = col
    try:
        return encode(result), col
    finally:
        _local.collected = None


def is_array(o: Any) -> bool:
    if isinstance(o, (bytes, bytearray, memoryview)):
        return True
    np = sys.modules.get("numpy")
    return np is not None and isinstance(o, np.ndarray)


def _paths(result: Any, col: List[Any]) -> List[str]:
    """Where each collected array sat, in the encoder's order: "result", "c", "items/0"."""
    want: Dict[int, List[int]] = {}
    for i, o in enumerate(col):
        want.setdefault(id(o), []).append(i)
    names = [f"array{i}" for i in range(len(col))]
    seen: Dict[int, int] = {}

    def walk(o: Any, path: List[str], depth: int) -> None:
        if depth > 500:
            return
        k = id(o)
        if k in want and is_array(o):
            n = seen.get(k, 0)
            if n < len(want[k]):
                names[want[k][n]] = "/".join(path) or "result"
                seen[k] = n + 1
            return
        if isinstance(o, dict):
            for key, v in o.items():
                walk(v, path + [str(key)], depth + 1)
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(v, path + [str(i)], depth + 1)

    walk(result, [], 0)
    return names


def _describe(o: Any, name: str, tool: str) -> Tuple[int, Tuple[int, ...], Any]:
    """(dtype code, shape, a C-contiguous native-order source) of one array."""
    if isinstance(o, (bytes, bytearray)):
        return 6, (len(o),), o
    if isinstance(o, memoryview):
        b = o if o.c_contiguous and o.format == "B" else o.tobytes()
        return 6, (memoryview(b).nbytes,), b
    dt = o.dtype
    code = _KIND_SIZE.get((dt.kind, dt.itemsize)) if dt.fields is None else None
    if code is None:
        raise UnsharableArray(
            f"result of tool '{tool}': the array at '{name}' has dtype {dt}, which cannot be "
            f"shared (supported: {SUPPORTED}); convert it or return a list")
    return code, tuple(int(s) for s in o.shape), o


def export(result: Any, col: List[Any], tool: str) -> List[Tuple[Any, ...]]:
    """Places the collected arrays and describes them for the RESULT frame."""
    np = sys.modules.get("numpy")
    names = _paths(result, col)
    out_range = _shm.out_range() if _shm is not None else None
    budget = out_range[1] // 2 if out_range else 0   # one result pins at most half
    blocks = _call_blocks()
    described = []
    try:
        for o, name in zip(col, names):
            code, shape, src = _describe(o, name, tool)
            nbytes = src.nbytes if np is not None and isinstance(src, np.ndarray) else len(src)
            if np is not None and isinstance(src, np.ndarray):
                # Filled in place in a block of this call: it goes as it is.
                addr = src.__array_interface__["data"][0]
                if addr in blocks and src.flags.c_contiguous and src.dtype.isnative:
                    off = blocks.pop(addr)
                    budget -= nbytes
                    described.append((name, code, shape, SHARED, off, nbytes))
                    continue
            got = _shm.alloc(nbytes) if _shm is not None and 0 < nbytes <= budget else None
            if got is not None:
                off, mv = got
                budget -= nbytes
                described.append((name, code, shape, SHARED, off, nbytes))
                if np is not None and isinstance(src, np.ndarray):
                    dst = np.frombuffer(mv, dtype=src.dtype.newbyteorder("=")).reshape(shape)
                    np.copyto(dst, src, casting="unsafe")
                else:
                    mv[:] = memoryview(src).cast("B")
                continue
            if np is not None and isinstance(src, np.ndarray):
                src = np.ascontiguousarray(src, dtype=src.dtype.newbyteorder("="))
            described.append((name, code, shape, INLINE, src, nbytes))
    except BaseException:
        for d in described:
            if d[3] == SHARED:
                _shm.free(d[4])
        raise
    return described
