"""An adapter that imports, at import time, an extension module without
free-threading support (sp_gil_user, built from tests/ext/sp_gil_user.c): on a
free-threaded Python the GIL is back on before the first call. For the tests
of `snakepit doctor` (tests/cli/test_doctor.py)."""

import sp_gil_user  # noqa: F401  (the import is the point)

from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool


class GilUserAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="Do nothing")
    def noop(self):
        return None
