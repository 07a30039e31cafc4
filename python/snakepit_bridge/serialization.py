"""Results that are not plain JSON, converted the way Snakepit's adapters expect.

Adapters written for Snakepit return objects its serializer converts
"gracefully": an object with ``model_dump()``, ``to_dict()`` or ``_asdict()``
becomes what that returns, one with ``tolist()`` its list, one with
``isoformat()`` (datetime, date, time) that text, and anything else a marker
``{"__ffi_unserializable__": true, "__type__": "module.Class"}`` instead of an
error. The worker applies :func:`graceful_default` to the results of adapters
that define ``execute_tool`` (Snakepit's entry point); other adapters keep the
strict rule (a result that is not JSON is an error naming it).

``SNAKEPIT_UNSERIALIZABLE_DETAIL`` adds to the marker: ``type`` a
placeholder text with the type, ``repr_truncated`` the object's ``repr()``,
``repr_redacted_truncated`` the same with tokens, keys and passwords
replaced by ``<REDACTED>``; ``SNAKEPIT_UNSERIALIZABLE_REPR_MAXLEN`` (default
500, at most 2000) bounds the text. The default, ``none``, adds nothing, so
no object's ``repr()`` (which may hold a secret) leaves the worker.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Optional

__all__ = ["UNSERIALIZABLE_KEY", "TYPE_KEY", "REPR_KEY", "GracefulJSONEncoder",
           "graceful_default", "to_json", "unserializable_marker"]

UNSERIALIZABLE_KEY = "__ffi_unserializable__"
TYPE_KEY = "__type__"
REPR_KEY = "__repr__"

#: Conversions tried in this order before the marker.
_CONVERTERS = ("model_dump", "to_dict", "_asdict", "tolist", "isoformat")

#: Arrays larger than this are not turned into lists (a marker instead); the
#: worker sends real arrays in binary before this is ever consulted.
TOLIST_MAX_ELEMENTS = 1_000_000

_REDACT = [
    (re.compile(r"(Bearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), r"\1<REDACTED>"),
    (re.compile(r"\bsk-[A-Za-z0-9\-]{10,}"), "sk-<REDACTED>"),
    (re.compile(r"((?:api[_-]?key|token|secret|password)\W{0,3}[:=]\s*)['\"]?[^'\"\s,)]+",
                re.IGNORECASE), r"\1<REDACTED>"),
]


def _maxlen() -> int:
    try:
        return max(0, min(int(os.environ.get("SNAKEPIT_UNSERIALIZABLE_REPR_MAXLEN", "500")),
                          2000))
    except ValueError:
        return 500


def _detail(obj: Any) -> Optional[str]:
    mode = os.environ.get("SNAKEPIT_UNSERIALIZABLE_DETAIL", "none").strip().lower()
    qualified = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if mode == "type":
        return f"<unserializable {qualified}>"
    if mode not in ("repr_truncated", "repr_redacted_truncated"):
        return None
    try:
        text = repr(obj)
    except Exception:   # noqa: BLE001 - a broken __repr__ must not fail the result
        text = f"<repr failed for {qualified}>"
    if mode == "repr_redacted_truncated":
        for pattern, replacement in _REDACT:
            text = pattern.sub(replacement, text)
    return text[:_maxlen()]


def unserializable_marker(obj: Any) -> dict:
    """The marker that stands for ``obj`` in a result."""
    marker = {UNSERIALIZABLE_KEY: True,
              TYPE_KEY: f"{type(obj).__module__}.{type(obj).__qualname__}"}
    detail = _detail(obj)
    if detail is not None:
        marker[REPR_KEY] = detail
    return marker


def _too_big(obj: Any) -> bool:
    size = getattr(obj, "size", None)
    try:
        return size is not None and int(size) > TOLIST_MAX_ELEMENTS
    except (TypeError, ValueError):
        return False


def graceful_default(obj: Any) -> Any:
    """A JSON-able stand-in for ``obj`` (a ``json`` ``default=`` hook): never raises."""
    for name in _CONVERTERS:
        method = getattr(obj, name, None)
        if not callable(method) or (name == "tolist" and _too_big(obj)):
            continue
        try:
            return method()
        except Exception:   # noqa: BLE001 - try the next conversion
            continue
    return unserializable_marker(obj)


class GracefulJSONEncoder(json.JSONEncoder):
    """``json.JSONEncoder`` that converts with :func:`graceful_default`."""

    def default(self, o: Any) -> Any:
        return graceful_default(o)


def to_json(value: Any) -> str:
    """``value`` as JSON text, converted gracefully."""
    return json.dumps(value, cls=GracefulJSONEncoder)
