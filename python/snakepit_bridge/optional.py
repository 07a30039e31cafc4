"""Optional dependencies of individual tools.

An adapter module that imports NumPy at the top fails to import on a Python
without NumPy (a free-threaded 3.14t build, say), and then every tool of the
pool is gone, even those that never touch it. Import such a library inside the
tools that need it instead::

    from snakepit_bridge.optional import require

    @tool(description="Matrix product")
    def matmul(self, a: list, b: list):
        np = require("numpy")
        ...

Only those tools then fail, each with a :class:`MissingDependency` naming the
tool, the library and the interpreter.
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
from types import ModuleType

from . import context

__all__ = ["MissingDependency", "require", "available"]


class MissingDependency(ImportError):
    """A tool needs a library this interpreter cannot import."""


def _interpreter() -> str:
    ver = ".".join(str(x) for x in sys.version_info[:3])
    build = "free-threaded build" if sysconfig.get_config_var("Py_GIL_DISABLED") else "GIL build"
    return f"Python {ver} ({build}, {sys.executable or 'embedded'})"


def require(name: str) -> ModuleType:
    """Import and return module ``name``; raise :class:`MissingDependency`
    (saying which tool needs it, and on which interpreter) if it cannot be
    imported."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        tool = context.current().tool
        who = f"tool '{tool}'" if tool else "this code"
        raise MissingDependency(
            f"{who} needs '{name}', which this interpreter cannot import: {e} "
            f"[{_interpreter()}]; the adapter's other tools are not affected",
            name=name) from e


def available(name: str) -> bool:
    """Whether module ``name`` can be imported here (imports it if so)."""
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False
