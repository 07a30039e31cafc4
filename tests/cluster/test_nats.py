"""Pools served and called across processes over a real nats-server: calls,
discovery and the service protocol, capacity-aware routing, failures (node
killed, server restarted, no node, bad URLs), drain on SIGTERM, token auth and
remote pools in a config fronted over HTTP."""

import json
import signal
import subprocess
import time
import urllib.request
from collections import Counter

from conftest import (BIN, NatsServer, cli, finish, load, nats_request_all, node_pids,
                      pool_yaml)


def test_exec_tools_pools_and_nodes(nats, nodes):
    nodes(nats.url, "alpha")
    r = cli("exec", "--nats", nats.url, "work", "add", '{"a": 2, "b": 40}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == 42
    r = cli("tools", "--nats", nats.url, "work")
    assert r.returncode == 0, r.stderr
    assert "whoami" in {t["name"] for t in json.loads(r.stdout)}
    r = cli("pools", "--nats", nats.url)
    assert json.loads(r.stdout) == ["work"]
    r = cli("nodes", "--nats", nats.url, "--json")
    doc = json.loads(r.stdout)
    [node] = doc["nodes"]
    assert node["name"] == "alpha" and node["draining"] is False
    [pool] = node["pools"]
    assert pool["name"] == "work" and pool["capacity"] == 1 and pool["calls"] >= 1
    r = cli("stats", "--json", "--nats", nats.url, "work")
    assert json.loads(r.stdout)[0]["pools"][0]["calls"]["ok"] >= 1
    # Errors of the node come back as they are, with their code.
    r = cli("exec", "--nats", nats.url, "work", "nosuch")
    assert r.returncode == 4 and "unknown tool 'nosuch' in pool 'work'" in r.stderr
    r = cli("exec", "--nats", nats.url, "work", "fail", '{"message": "bad"}')
    assert r.returncode == 1 and "ValueError" in r.stderr and "bad" in r.stderr
    r = cli("exec", "--nats", nats.url, "work", "add", '{"a": 1')
    assert r.returncode == 4 and "not valid JSON" in r.stderr
    # Sessions stay on one machine: a session call to a remote pool is refused, not unbound.
    r = cli("exec", "--nats", nats.url, "--session", "s1", "work", "add", '{"a": 1, "b": 2}')
    assert r.returncode == 4 and "sessions do not travel over NATS" in r.stderr, r.stderr


def test_service_protocol_subjects(nats, nodes):
    nodes(nats.url, "alpha")
    nodes(nats.url, "beta")
    for verb, kind in (("PING", "ping"), ("INFO", "info"), ("STATS", "stats")):
        for subject in (f"$SRV.{verb}", f"$SRV.{verb}.snakepit"):
            replies = nats_request_all(nats.url, subject)
            assert len(replies) == 2, (subject, replies)
            for rep in replies:
                assert rep["type"] == f"io.nats.micro.v1.{kind}_response"
                assert rep["name"] == "snakepit" and rep["id"] and rep["version"]
                if verb != "PING":
                    [ep] = rep["endpoints"]
                    assert ep["name"] == "work" and ep["subject"] == "snakepit.call.work"
                if verb == "STATS":
                    assert "started" in rep and "num_requests" in ep and "processing_time" in ep
        one = replies[0]["id"]
        assert [r["id"] for r in nats_request_all(nats.url, f"$SRV.{verb}.snakepit.{one}")] == [one]


def test_no_node_fails_at_once(nats, nodes):
    nodes(nats.url, "alpha")
    t0 = time.time()
    r = cli("exec", "--nats", nats.url, "-t", "15000", "missing", "noop")
    took = time.time() - t0
    assert r.returncode == 4, r.stderr
    assert "no node serves pool 'missing'" in r.stderr
    assert took < 15 / 3, took  # a fraction of the call's 15 s timeout, not all of it


def test_bad_url_and_unreachable_server(nats):
    r = cli("exec", "--nats", "http://127.0.0.1:1", "work", "noop")
    assert r.returncode == 4 and "bad NATS URL" in r.stderr
    t0 = time.time()
    r = cli("exec", "--nats", "nats://127.0.0.1:1", "work", "noop")
    assert r.returncode == 6 and "cannot connect to NATS at nats://127.0.0.1:1" in r.stderr
    assert time.time() - t0 < 10
    r = cli("nodes")
    assert r.returncode == 2 and "needs --nats" in r.stderr
    # A node that cannot reach its NATS server says so and exits; nothing is left running.
    t0 = time.time()
    r = cli("serve", "--nats", "nats://127.0.0.1:1", "--adapter",
            "snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter", timeout=60)
    assert r.returncode == 3 and "cannot connect to NATS at nats://127.0.0.1:1" in r.stderr, r.stderr
    assert time.time() - t0 < 40


def test_calls_spread_over_nodes(nats, nodes):
    nodes(nats.url, "alpha")
    nodes(nats.url, "beta")
    out = load(nats.url, "whoami", '{"delay": 0.05}', calls=40, concurrency=4)
    assert out["ok"] == 40, out
    owners = Counter()
    pids = node_pids(nats.url)
    for pid, n in out["pids"].items():
        owners[pids[pid]] += n
    assert owners["alpha"] > 0 and owners["beta"] > 0, owners


def test_full_node_gets_no_calls_another_could_take(nats, nodes):
    # alpha runs one call at a time, beta three: four callers keep both busy.
    # Capacity-aware routing gives alpha about a quarter of the calls; a random
    # queue group would give it half (and make everyone wait on it).
    nodes(nats.url, "alpha", pool_yaml(size=1))
    nodes(nats.url, "beta", pool_yaml(size=3))
    out = load(nats.url, "whoami", '{"delay": 0.15}', calls=40, concurrency=4)
    assert out["ok"] == 40, out
    pids = node_pids(nats.url)
    owners = Counter()
    for pid, n in out["pids"].items():
        owners[pids[pid]] += n
    assert owners["alpha"] <= 14, owners  # 10 expected; random routing: 20
    assert owners["beta"] >= 26, owners


def busy_node(url, started):
    """The started node holding calls now, and how many (kill that one)."""
    doc = json.loads(cli("nodes", "--nats", url, "--json").stdout)
    held = {n["name"]: n["pools"][0]["in_flight"] for n in doc["nodes"]}
    name = max(held, key=held.get)
    return next(n for n in started if n.name == name), held[name]


def test_node_killed_mid_call(nats, nodes):
    started = [nodes(nats.url, "alpha", pool_yaml(size=2)), nodes(nats.url, "beta", pool_yaml(size=2))]
    p = load(nats.url, "whoami", '{"delay": 2.0}', calls=4, concurrency=4, timeout_ms=20000,
             background=True)
    time.sleep(0.8)
    victim, held = busy_node(nats.url, started)
    assert held >= 1
    t0 = time.time()
    victim.kill()
    out = finish(p)
    took = time.time() - t0
    assert took < 20 * 0.4, took  # well before the 20 s deadline
    # Exactly the calls the killed node held fail, as a node gone; the others finish.
    assert out["errors"] == {"SP_ECRASHED": held}, (out, held)
    assert out["ok"] == 4 - held, out


def test_node_killed_idempotent_calls_retried(nats, nodes):
    started = [nodes(nats.url, "alpha", pool_yaml(size=2)), nodes(nats.url, "beta", pool_yaml(size=2))]
    p = load(nats.url, "whoami", '{"delay": 1.5}', calls=4, concurrency=4, timeout_ms=20000,
             idempotent=True, background=True)
    time.sleep(0.8)
    victim, held = busy_node(nats.url, started)
    assert held >= 1
    victim.kill()
    out = finish(p)
    assert out["ok"] == 4, out


def test_sigterm_drains(nats, nodes):
    alpha = nodes(nats.url, "alpha")
    p = load(nats.url, "whoami", '{"delay": 1.5}', calls=1, concurrency=1, background=True)
    time.sleep(0.5)
    alpha.kill(signal.SIGTERM)
    out = finish(p)
    assert out["ok"] == 1, out  # the call in flight finished
    assert alpha.wait(15) == 0
    # Gone from NATS: a new call has no node.
    r = cli("exec", "--nats", nats.url, "work", "noop")
    assert r.returncode == 4 and "no node serves pool 'work'" in r.stderr


def test_server_restart_under_load(nats, nodes):
    nodes(nats.url, "alpha", pool_yaml(size=2))
    p = load(nats.url, "whoami", '{"delay": 0.02}', calls=300, concurrency=4, timeout_ms=6000,
             background=True)
    time.sleep(0.7)
    nats.restart(pause=0.5)
    out = finish(p, timeout=120)
    assert out["ok"] > 0, out
    # Failures are the clear kinds only: timed out, or no node while it reconnected.
    assert set(out["errors"]) <= {"SP_ETIMEOUT", "SP_ENOPOOL", "SP_EIO", "SP_ECRASHED"}, out
    # Both the node and new clients are back without anybody restarting them.
    deadline = time.time() + 10
    while True:
        r = cli("exec", "--nats", nats.url, "work", "add", '{"a": 1, "b": 1}')
        if r.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.3)
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stderr


def test_token_auth(tmp_path, nats, nodes):
    secured = NatsServer(tmp_path, token="s3cret")
    try:
        nodes(secured.url, "alpha", None, "--nats-token", "s3cret")
        r = cli("exec", "--nats", secured.url, "work", "add", '{"a": 1, "b": 2}')
        assert r.returncode != 0 and "uthorization" in r.stderr, r.stderr
        r = cli("exec", "--nats", secured.url, "--nats-token", "s3cret", "work", "add",
                '{"a": 1, "b": 2}')
        assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr
        r = cli("exec", "--nats", secured.url, "work", "add", '{"a": 1, "b": 3}',
                env={"SNAKEPIT_NATS_TOKEN": "s3cret"})
        assert r.returncode == 0 and r.stdout.strip() == "4", r.stderr
    finally:
        secured.stop()


def test_user_password_auth(tmp_path, nats, nodes):
    secured = NatsServer(tmp_path, user=("app", "pw1"))
    try:
        nodes(secured.url, "alpha", None, "--nats-user", "app", "--nats-password", "pw1")
        r = cli("exec", "--nats", secured.url, "--nats-user", "app", "--nats-password", "wrong",
                "work", "noop")
        assert r.returncode != 0 and "uthorization" in r.stderr, r.stderr
        r = cli("exec", "--nats", secured.url, "--nats-user", "app", "--nats-password", "pw1",
                "work", "add", '{"a": 2, "b": 2}')
        assert r.returncode == 0 and r.stdout.strip() == "4", r.stderr
        # The URL may carry them too.
        url = secured.url.replace("nats://", "nats://app:pw1@")
        r = cli("exec", "--nats", url, "work", "add", '{"a": 2, "b": 3}')
        assert r.returncode == 0 and r.stdout.strip() == "5", r.stderr
    finally:
        secured.stop()


def test_payload_above_max_payload(tmp_path, nodes):
    small = NatsServer(tmp_path, conf="max_payload: 4096\n")
    try:
        nodes(small.url, "alpha")
        big = json.dumps({"value": "x" * 10000})
        r = cli("exec", "--nats", small.url, "work", "echo", big)
        assert r.returncode == 6 or r.returncode == 4 or r.returncode != 0
        assert "max_payload of 4096 bytes" in r.stderr, r.stderr
    finally:
        small.stop()


def test_remote_pool_in_config_fronted_over_http(tmp_path, nats, nodes):
    nodes(nats.url, "alpha")
    cfg = tmp_path / "front.yaml"
    cfg.write_text(f"pools:\n  - name: work\n    remote: {nats.url}\n    timeout: 10s\n")
    front = subprocess.Popen([BIN, "serve", "-c", str(cfg), "--listen", "127.0.0.1:0"],
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        url = None
        deadline = time.time() + 20
        while time.time() < deadline and url is None:
            line = front.stderr.readline()
            if "listening on" in line:
                url = line.split("listening on ")[1].split()[0]
        assert url, "the HTTP front end did not start"
        req = urllib.request.Request(url + "/v1/pools/work/tools/add", data=b'{"a": 20, "b": 22}',
                                     headers={"Content-Type": "application/json"})
        body = json.loads(urllib.request.urlopen(req, timeout=10).read())
        assert body == 42 or body.get("result") == 42, body
    finally:
        front.send_signal(signal.SIGTERM)
        front.wait(20)


def test_remote_pool_config_errors(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pools:\n  - name: work\n    remote: nats://127.0.0.1:1\n    pool_size: 2\n")
    r = cli("exec", "-c", str(cfg), "work", "noop")
    assert r.returncode == 3 and "pool_size" in r.stderr and "does not apply to a remote pool" in r.stderr
    cfg.write_text("pools:\n  - name: work\n    remote_token: x\n")
    r = cli("exec", "-c", str(cfg), "work", "noop")
    assert r.returncode == 3 and "only applies to a remote pool" in r.stderr


def test_exec_with_npy_arrays_over_nats(tmp_path, nats, nodes):
    pytest = __import__("pytest")
    np = pytest.importorskip("numpy")
    nodes(nats.url, "alpha")
    np.save(tmp_path / "v.npy", np.arange(6, dtype=np.int32).reshape(2, 3))
    out = tmp_path / "out"
    out.mkdir()
    r = cli("exec", "--nats", nats.url, "--array", f"value={tmp_path / 'v.npy'}", "--out", str(out),
            "work", "echo")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["shape"] == [2, 3]
    back = np.load(out / "result.npy")
    assert back.dtype == np.int32 and back.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_returned_arrays_arrive_as_lists(nats, nodes):
    pytest = __import__("pytest")
    if subprocess.run(["/usr/bin/python3", "-c", "import numpy"]).returncode != 0:
        pytest.skip("NumPy is not installed")
    cfg = pool_yaml().replace("testing_adapter.TestingAdapter", "array_adapter.ArrayAdapter")
    nodes(nats.url, "alpha", cfg)
    r = cli("exec", "--nats", nats.url, "work", "ones", '{"n": 3}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [1.0, 1.0, 1.0]


def test_exec_stream_over_nats(nats, nodes):
    nodes(nats.url, "alpha")
    p = subprocess.Popen([BIN, "exec", "--stream", "--nats", nats.url, "work", "count",
                          '{"n": 4, "delay": 0.4}'], stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    first = p.stdout.readline()
    t_first = time.time() - t0
    rest = p.stdout.read()
    total = time.time() - t0
    assert p.wait(10) == 0
    assert [json.loads(line)["i"] for line in [first] + rest.splitlines()] == [0, 1, 2, 3]
    assert t_first < total / 2, (t_first, total)  # chunks arrive as they are made
