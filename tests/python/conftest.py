"""pytest setup for the SDK tests: import paths and environment isolation.

Run: cd /work/main && PYTHONPATH=python:tests/adapters /usr/bin/python3 -m pytest -q tests/python
(the paths are also added here, so PYTHONPATH is optional).
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for sub in ("python", os.path.join("tests", "adapters")):
    path = os.path.join(ROOT, sub)
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture(autouse=True)
def _isolate_environment():
    """_host.load() exports SNAKEPIT_* variables; the global checker is shared.
    Restore both after every test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    from snakepit_bridge import thread_safety_checker as tsc
    checker = tsc.get_global_checker()
    checker.disable()
    checker.strict_mode = False
    checker.reset()
