"""Facts about a worker's Python for `snakepit doctor` (private).

Every worker report (``Host.report``, the manager's STATS request) carries
:func:`facts` as its "environment": the interpreter and
its build, whether the GIL was on before and after the adapter's imports and is
on now, NumPy and the BLAS it loaded with its thread settings, the libraries of
the compatibility table that are installed, and the machine as this process
sees it. Reading them imports nothing the adapter did not.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from typing import Any, Dict, Iterable, List

from . import thread_safety_checker as _tsc

#: Environment variables that size the thread pools of BLAS libraries.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_BLAS_NAMES = ("openblas", "libblas", "mkl_rt", "libmkl", "blis", "libflexiblas", "libcblas")


def gil_enabled() -> bool:
    fn = getattr(sys, "_is_gil_enabled", None)
    return bool(fn()) if fn is not None else True


#: The GIL state when the SDK was imported: before any adapter module.
GIL_AT_START = gil_enabled()


def _loaded_blas() -> List[str]:
    """Shared libraries of a BLAS mapped into this process (from /proc/self/maps)."""
    found = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1] if "/" in line else ""
                base = os.path.basename(path)
                if any(n in base for n in _BLAS_NAMES):
                    found.add(path)
    except OSError:
        pass
    return sorted(found)


def _numpy() -> Dict[str, Any]:
    """NumPy as imported by the adapter (never imported here)."""
    np = sys.modules.get("numpy")
    out: Dict[str, Any] = {"installed": importlib.util.find_spec("numpy") is not None,
                           "imported": np is not None,
                           "version": getattr(np, "__version__", None),
                           "blas_libraries": _loaded_blas(),
                           "blas_thread_env": {k: os.environ.get(k) for k in BLAS_THREAD_VARS}}
    return out


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))


def _installed_table_libraries() -> List[Dict[str, Any]]:
    """Libraries of the compatibility table installed for this Python (standard
    library modules only once imported: they are always there), with their
    status (find_spec only: nothing is imported)."""
    table = _tsc.load_compatibility()
    out, seen = [], set()
    for entry in sorted(table.values(), key=lambda e: e["library"]):
        if entry["library"] in seen:
            continue
        seen.add(entry["library"])
        modules = entry.get("modules") or [entry["library"]]
        imported = any(m in sys.modules for m in modules)
        stdlib = all(m.split(".", 1)[0] in _STDLIB for m in modules)
        if imported or (not stdlib and any(_installed(m) for m in modules)):
            out.append({"library": entry["library"], "status": entry["status"],
                        "imported": imported,
                        "reason": entry.get("reason", ""),
                        "workaround": entry.get("workaround", "")})
    return out


def _installed(module: str) -> bool:
    if module in sys.builtin_module_names or module in sys.modules:
        return True
    try:
        # The top-level package only (finding a submodule imports its parent),
        # looked up on sys.path directly: these facts must import nothing and
        # must not pass the thread-safety checker's import hook, which would
        # take the look-up for an import.
        return importlib.machinery.PathFinder.find_spec(module.split(".", 1)[0]) is not None
    except (ImportError, ValueError):
        return False


def _extension_modules(names: Iterable[str]) -> List[str]:
    """Top-level packages of compiled extension modules among ``names``."""
    out = set()
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name in names:
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None) or ""
        if path.endswith(suffixes):
            out.add(name.split(".", 1)[0])
    return sorted(out)


def facts(baseline_modules: Iterable[str], gil_after_load: bool) -> Dict[str, Any]:
    """Everything `snakepit doctor` asks a worker (see the module docstring)."""
    baseline = set(baseline_modules)
    adapter_modules = [m for m in list(sys.modules) if m not in baseline]
    try:
        cpus_usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus_usable = os.cpu_count()
    return {
        "python_version": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled_at_start": GIL_AT_START,
        "gil_enabled_after_adapter_import": gil_after_load,
        "gil_enabled_now": gil_enabled(),
        "adapter_extension_modules": _extension_modules(adapter_modules),
        "numpy": _numpy(),
        "libraries": _installed_table_libraries(),
        "cpus": os.cpu_count(),
        "cpus_usable": cpus_usable,
    }
