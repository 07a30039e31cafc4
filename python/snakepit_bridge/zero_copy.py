"""``ZeroCopyRef``: a description of a buffer (kind, device, dtype, shape).

Snakepit's Python package uses it to recognise DLPack / Arrow handles. Here,
buffers travel without it: NumPy arrays, ``bytes``, ``bytearray`` and
``memoryview`` anywhere in a tool's arguments or result cross between caller
and worker through shared memory (see the README, "Arrays"). The class is
kept so that code which builds or inspects such descriptions runs unchanged;
:meth:`ZeroCopyRef.from_array` describes a local array, and a tool returns
the array itself to send it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = ["ZeroCopyRef"]

_FIELDS = ("kind", "device", "dtype", "shape", "owner", "ref", "copy", "bytes")


class ZeroCopyRef:
    """A buffer description built from a payload dictionary.

    The payload's ``kind``, ``device``, ``dtype``, ``shape``, ``owner``,
    ``ref``, ``copy`` and ``bytes`` entries become attributes (None when
    absent), ``metadata`` defaults to ``{}``; :meth:`to_payload` gives the
    dictionary back.
    """

    def __init__(self, payload: Dict[str, Any]) -> None:
        if not isinstance(payload, dict):
            raise TypeError(f"ZeroCopyRef needs a dict payload, got {type(payload).__name__}")
        self.payload = dict(payload)
        for name in _FIELDS:
            setattr(self, name, self.payload.get(name))
        self.metadata = self.payload.get("metadata", {})
        self.array: Optional[Any] = None

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "ZeroCopyRef":
        return cls(payload)

    @classmethod
    def from_array(cls, array: Any) -> "ZeroCopyRef":
        """Describe a NumPy array or bytes-like object (kept as ``.array``)."""
        if isinstance(array, (bytes, bytearray, memoryview)):
            size = memoryview(array).nbytes
            payload = {"kind": "bytes", "device": "cpu", "dtype": "uint8",
                       "shape": [size], "bytes": size, "copy": False}
        else:
            payload = {"kind": "array", "device": "cpu", "dtype": str(array.dtype),
                       "shape": [int(n) for n in array.shape], "bytes": int(array.nbytes),
                       "copy": False}
        ref = cls(payload)
        ref.array = array
        return ref

    def to_payload(self) -> Dict[str, Any]:
        return dict(self.payload)

    def __repr__(self) -> str:
        return f"<ZeroCopyRef kind={self.kind} device={self.device} ref={self.ref}>"
