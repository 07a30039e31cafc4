"""The built-in pools' showcase tools that go beyond one call, run as the
README's quick start runs them: `relay` (a tool calling another tool through
the host) and `ask_host` one-shot on the built-in pools (--local); `chat` (a
conversation kept in its session's state) against `snakepit serve` of the
built-in pools, through the CLI (--url, --session) and over HTTP
(X-Snakepit-Session); and the stats table's `calls back:` line."""

import http.client
import json
import re
import threading

import pytest

from test_cli import EXIT_OK, EXIT_PYTHON, ok_json, run, run_on_terminal, served

WORKER_OF_THREAD = re.compile(r"^snakepit-(w\d+)-t\d+$")  # the SDK's names for its threads


def relay(pool, args, *extra):
    return run(*extra, "exec", pool, "relay", json.dumps(args))


# ---- one-shot, on the built-in pools --------------------------------------------------------

def test_relay_calls_a_tool_of_another_pool():
    res = ok_json(relay("hpc_pool", {"pool": "default", "tool": "ping"}))
    assert res["via"]["pool"] == "hpc_pool" and res["via"]["worker"] in ("w1", "w2")
    assert res["called"] == {"pool": "default", "tool": "ping"}
    assert res["result"]["status"] == "ok"


def test_relay_into_its_own_pool_runs_on_the_free_worker():
    # `default` is 2 process workers of one thread: the nested call needs the other.
    res = ok_json(relay("default", {"tool": "ping"}))
    assert res["called"] == {"pool": "default", "tool": "ping"}
    nested_worker = WORKER_OF_THREAD.match(res["result"]["thread"]).group(1)
    assert nested_worker != res["via"]["worker"], res
    res = ok_json(relay("default", {"tool": "echo", "args": {"x": [1, "two"]}}))
    assert res["result"] == {"x": [1, "two"]}


def test_relay_chain_in_the_thread_pool():
    # hpc_pool has 2 x 4 threads: room for a chain of three levels in itself.
    res = ok_json(relay("hpc_pool", {"tool": "relay", "args": {"tool": "relay", "args": {
        "tool": "echo", "args": {"deep": True}}}}))
    assert res["result"]["result"]["result"] == {"deep": True}
    assert res["result"]["called"] == {"pool": "hpc_pool", "tool": "relay"}


def test_self_call_without_a_free_worker_fails_at_once():
    # relay -> relay -> ping in `default` needs three workers; it has two. The
    # innermost call is refused at once, not left to wait for the deadline.
    proc = relay("default", {"tool": "relay", "args": {"tool": "ping"}}, "-t", "20000")
    assert proc.returncode == EXIT_PYTHON, proc.stderr
    assert "SP_EDEADLOCK" in proc.stderr and "add workers or threads to pool 'default'" in proc.stderr
    assert proc.elapsed < 20 / 2, proc.elapsed


def test_ask_host_names_what_is_missing():
    # The CLI registers no host function: examples/callbacks.c is a program that does.
    proc = run("exec", "default", "ask_host", '{"function": "lookup", "args": {"key": "x"}}')
    assert proc.returncode == EXIT_PYTHON, proc.stderr
    assert "SP_ENOFUNC" in proc.stderr and "unknown host function 'lookup'" in proc.stderr
    assert "sp_register_host_function" in proc.stderr


def test_chat_outside_a_session_says_how_to_keep_the_history():
    res = ok_json(run("exec", "default", "chat", '{"text": "hello"}'))
    assert res["session"] is None and res["turn"] == 1 and res["history"] == ["hello"]
    assert "--session" in res["note"] and "X-Snakepit-Session" in res["note"]
    proc = run("exec", "default", "chat", "{}")
    assert proc.returncode != EXIT_OK and "missing required argument 'text'" in proc.stderr


# ---- against `snakepit serve` of the built-in pools -----------------------------------------

@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """`snakepit serve` of the built-in pools (no config) on a free loopback port."""
    yield from served(tmp_path_factory.mktemp("showcase") / "serve.log")


def chat(url, pool, text, session, *extra):
    return ok_json(run("--url", url, "exec", "--session", session, *extra, pool, "chat",
                       json.dumps({"text": text})))


@pytest.mark.parametrize("pool", ["default", "hpc_pool"])
def test_chat_keeps_the_history_of_its_session(url, pool):
    sid = f"readme-{pool}"
    first = chat(url, pool, "hi", sid)
    second = chat(url, pool, "how are you?", sid)
    assert (first["turn"], second["turn"]) == (1, 2)
    assert second["history"] == ["hi", "how are you?"] and second["session"] == sid
    assert first["worker"] == second["worker"]
    # Another session has its own history.
    assert chat(url, pool, "other", sid + "-b")["history"] == ["other"]
    assert ok_json(run("--url", url, "session", "end", pool, sid))["ended"] is True
    assert chat(url, pool, "back", sid)["history"] == ["back"]


def post_chat(url, pool, text, headers):
    host = url.split("//", 1)[1]
    c = http.client.HTTPConnection(host, timeout=30)
    try:
        c.request("POST", f"/v1/pools/{pool}/tools/chat", body=json.dumps({"text": text}),
                  headers={"Content-Type": "application/json", **headers})
        resp = c.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        c.close()


def test_chat_session_over_http_is_the_cli_session(url):
    sid = "readme-http"
    chat(url, "default", "from the CLI", sid)
    status, doc = post_chat(url, "default", "over HTTP", {"X-Snakepit-Session": sid})
    assert status == 200, doc
    assert doc["turn"] == 2 and doc["history"] == ["from the CLI", "over HTTP"]


def test_chat_calls_of_one_session_at_once_lose_no_turn(url):
    # Strict mode: every call runs on the session's worker (4 threads), several at
    # once; each gets its own turn and the history keeps every message.
    sid, n = "readme-crowd", 12
    out = []

    def one(i):
        out.append(post_chat(url, "hpc_pool", f"m{i}", {"X-Snakepit-Session": sid,
                                                        "X-Snakepit-Session-Mode": "strict"}))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status == 200 for status, _ in out), out
    assert sorted(doc["turn"] for _, doc in out) == list(range(1, n + 1))
    assert len({doc["worker"] for _, doc in out}) == 1
    last = max((doc for _, doc in out), key=lambda d: d["turn"])
    assert sorted(last["history"]) == sorted(f"m{i}" for i in range(n))


def test_stats_table_shows_the_calls_back(url):
    ok_json(relay("hpc_pool", {"pool": "default", "tool": "ping"}, "--url", url))
    ok_json(relay("hpc_pool", {"tool": "echo"}, "--url", url))
    proc = run("--url", url, "exec", "hpc_pool", "ask_host", '{"function": "nowhere"}')
    assert proc.returncode == EXIT_PYTHON and "SP_ENOFUNC" in proc.stderr
    st = next(p for p in ok_json(run("--url", url, "stats", "--json"))["pools"]
              if p["name"] == "hpc_pool")
    assert st["nested_calls"] >= 2 and st["nested_refused"] >= 1
    rc, table = run_on_terminal("--url", url, "stats")
    assert rc == EXIT_OK, table
    want = (f"calls back: {st['nested_calls']} to tools, {st['host_function_calls']} to host "
            f"functions, {st['calls_waiting_nested']} waiting now, {st['nested_refused']} refused")
    assert want in table, table
    # Sessions of the chat tests are on the table too.
    assert "sessions:" in table
