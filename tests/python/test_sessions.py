"""The SDK side of sessions: `current().session` and `current().session_id`
are None outside a session call, `SessionState` is a dict with an id and a
re-entrant lock, and the worker's table of states starts empty. (Calls in
sessions, with the worker setting these from C, are tested against real
workers in tests/integration/test_sessions.c.)"""

import threading

from snakepit_bridge import context
from snakepit_bridge.context import SessionState, current


def test_outside_a_session_both_are_none():
    ctx = current()
    assert ctx.session is None
    assert ctx.session_id is None


def test_session_state_is_a_dict_with_id_and_lock():
    s = SessionState("user-1")
    assert isinstance(s, dict) and s == {} and s.id == "user-1"
    s["n"] = 1
    with s.lock:
        with s.lock:  # re-entrant: a helper may take it again
            s["n"] += 1
    assert s == {"n": 2}


def test_each_thread_sees_its_own_session():
    # The worker sets the attributes per execution thread (context._local).
    seen = {}

    def run(name):
        context._local.session_id = name
        context._local.session = SessionState(name)
        seen[name] = (current().session_id, current().session.id)
    threads = [threading.Thread(target=run, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {f"s{i}": (f"s{i}", f"s{i}") for i in range(4)}
    assert current().session is None


def test_the_table_of_states_is_a_plain_dict():
    assert isinstance(context._sessions, dict)
    assert "SessionState" in context.__all__
