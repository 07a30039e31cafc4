"""worker_profile: auto: _host.decide_profile picks thread only for a
free-threaded interpreter, an adapter declaring __thread_safe__ = True and no
library flagged unsafe; choose_profile decides for a real adapter module."""

import json
import sys

from snakepit_bridge import _host
from snakepit_bridge import thread_safety_checker as tsc


class Declared:
    __thread_safe__ = True


class Undeclared:
    pass


def lib(name):
    entry = tsc.library_info(name)
    return {"library": entry["library"], "status": entry["status"], "module": name,
            "reason": entry.get("reason", ""), "workaround": entry.get("workaround", "")}


def test_free_threaded_and_declared_safe_chooses_thread():
    profile, why = _host.decide_profile(Declared, False, [lib("numpy")])
    assert profile == "thread"
    assert "without the GIL" in why and "__thread_safe__ = True" in why


def test_every_other_case_chooses_process_and_says_why():
    profile, why = _host.decide_profile(Declared, True, [])
    assert profile == "process" and "GIL" in why
    profile, why = _host.decide_profile(Undeclared, False, [])
    assert profile == "process" and "Undeclared does not declare __thread_safe__" in why
    profile, why = _host.decide_profile(Declared, False, [lib("numpy"), lib("sqlite3")])
    assert profile == "process" and "sqlite3" in why and "thread-unsafe" in why


def test_choose_profile_looks_at_this_interpreter_and_the_module():
    out = json.loads(_host.choose_profile("testing_adapter.TestingAdapter", "p"))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    assert out["gil_enabled"] == gil
    assert out["profile"] == ("process" if gil else out["profile"])
    assert out["reason"]
