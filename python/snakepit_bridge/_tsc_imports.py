"""Import hook of the thread-safety checker. Private.

While at least one checker is active, a finder sits first on ``sys.meta_path``.
When a module named in ``compatibility.json`` (``pandas``, ``sklearn``,
``sqlite3`` ...) is imported for the first time -- by the adapter's module, in
``__init__``, or inside a tool call -- it tells the active checkers where the
import happened (file:line, the tool and thread if inside a call); unsafe
libraries are reported at once (raised in strict mode, which makes the import
statement fail). The finder never loads anything itself: it answers None and
the normal finders import the module as usual.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Optional

from . import thread_safety_checker as _tsc

_state = threading.local()
_install_lock = threading.Lock()
_HERE = os.path.abspath(__file__)
_IMPORTLIB_DIR = os.sep + "importlib" + os.sep


def _import_site(frame: Any) -> str:
    """file:line of the code whose import statement is running: the first
    frame outside the import machinery."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith("<frozen ") or _IMPORTLIB_DIR in filename
                or os.path.abspath(filename) == _HERE):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class _MatrixFinder:
    """Meta path finder that only observes imports of table libraries."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if not _tsc._active:
            return None
        info = _tsc.module_entry(fullname)
        if info is None or getattr(_state, "busy", False):
            return None
        if not self._importable(fullname, path, target):
            return None         # a failed import is not a library in use
        where = _import_site(sys._getframe(1))
        for checker in _tsc.active_checkers():
            checker._library_imported(info, fullname, where)
        return None

    def _importable(self, fullname: str, path: Any, target: Any) -> bool:
        _state.busy = True
        try:
            for finder in list(sys.meta_path):
                if finder is self or isinstance(finder, _MatrixFinder):
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                try:
                    if find(fullname, path, target) is not None:
                        return True
                except Exception:
                    continue
            return False
        finally:
            _state.busy = False

    def invalidate_caches(self) -> None:
        return None


_finder: Optional[_MatrixFinder] = None


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent)."""
    global _finder
    with _install_lock:
        if _finder is not None and _finder in sys.meta_path:
            return
        _finder = _MatrixFinder()
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Remove the finder (no checker is active any more)."""
    global _finder
    with _install_lock:
        if _finder is not None:
            try:
                sys.meta_path.remove(_finder)
            except ValueError:
                pass
            _finder = None
