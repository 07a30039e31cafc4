"""pytest setup for the SDK tests: import paths and environment isolation.

Run: cd /work/main && PYTHONPATH=python:tests/adapters /usr/bin/python3 -m pytest -q tests/python
(the paths are also added here, so PYTHONPATH is optional).
"""

import importlib.util
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


# Tests marked @pytest.mark.numpy need NumPy in this interpreter. There is no
# NumPy for a free-threaded 3.14t on Debian 12, so they skip there, with the
# reason; every other test runs on every build.
NUMPY_MISSING = importlib.util.find_spec("numpy") is None


def pytest_configure(config):
    config.addinivalue_line("markers", "numpy: the test needs NumPy (skipped without it)")


def pytest_runtest_setup(item):
    if NUMPY_MISSING and item.get_closest_marker("numpy") is not None:
        pytest.skip(f"NumPy is not installed for Python {sys.version.split()[0]} "
                    f"({sys.executable}); Debian's python3-numpy serves only /usr/bin/python3")
