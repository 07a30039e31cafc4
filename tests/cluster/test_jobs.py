"""Durable jobs on JetStream: submit and result, de-duplication by job id,
redelivery to another node when the node running a job is killed, an outcome
for a job lost on every delivery, array arguments inline, and a clear error
from a server without JetStream."""

import json
import time

import pytest

from conftest import NatsServer, cli, node_pids, pool_yaml


def result(url, job, wait_ms=20000):
    return cli("result", "--nats", url, "-t", str(wait_ms), job, timeout=wait_ms / 1000 + 30)


def test_submit_and_result(nats_js, nodes):
    nodes(nats_js.url, "alpha")
    r = cli("submit", "--nats", nats_js.url, "--job-id", "sum-1", "work", "add", '{"a": 1, "b": 2}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"job": "sum-1"}
    r = result(nats_js.url, "sum-1")
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr
    # The same id again adds nothing: the first job's outcome stands.
    r = cli("submit", "--nats", nats_js.url, "--job-id", "sum-1", "work", "add", '{"a": 5, "b": 5}')
    assert r.returncode == 0, r.stderr
    time.sleep(1.0)
    assert result(nats_js.url, "sum-1").stdout.strip() == "3"
    # A job the node refuses is finished, with its error.
    cli("submit", "--nats", nats_js.url, "--job-id", "bad-1", "work", "nosuch")
    r = result(nats_js.url, "bad-1")
    assert r.returncode == 4 and "unknown tool 'nosuch'" in r.stderr
    # An unknown job is not finished (exit 5), said at once without -t.
    r = cli("result", "--nats", nats_js.url, "never-submitted")
    assert r.returncode == 5 and "has not finished" in r.stderr
    r = cli("submit", "--nats", nats_js.url, "--job-id", "bad id!", "work", "noop")
    assert r.returncode == 4 and "job id" in r.stderr


def test_job_of_killed_node_runs_on_another(nats_js, nodes):
    alpha = nodes(nats_js.url, "alpha", pool_yaml(size=1))
    nodes(nats_js.url, "beta", pool_yaml(size=1))
    pids = node_pids(nats_js.url)
    beta_pids = {p for p, n in pids.items() if n == "beta"}
    for i in range(4):
        r = cli("submit", "--nats", nats_js.url, "--job-id", f"slow-{i}", "work", "whoami",
                '{"delay": 1.5}')
        assert r.returncode == 0, r.stderr
    time.sleep(0.7)
    doc = json.loads(cli("nodes", "--nats", nats_js.url, "--json").stdout)
    busy = {n["name"]: n["pools"][0]["in_flight"] for n in doc["nodes"]}
    assert busy.get("alpha") == 1, busy  # alpha holds a job when it dies
    alpha.kill()
    for i in range(4):
        r = result(nats_js.url, f"slow-{i}", 30000)
        assert r.returncode == 0, r.stderr
        # alpha finished nothing (killed 0.7 s into a 1.5 s job): beta ran all four.
        assert str(json.loads(r.stdout)["pid"]) in beta_pids


def test_submit_without_jetstream(nats, nodes):
    node = nodes(nats.url, "alpha")
    assert "takes no durable jobs" in node.text()
    r = cli("submit", "--nats", nats.url, "work", "noop")
    assert r.returncode != 0 and "start nats-server with -js" in r.stderr, r.stderr
    # Calls work as ever.
    assert cli("exec", "--nats", nats.url, "work", "add", '{"a": 1, "b": 1}').stdout.strip() == "2"


def test_job_lost_on_every_delivery_fails_clearly(nats_js, nodes):
    # Each delivery of the job kills the node running it; with two deliveries
    # allowed, the third node sees JetStream give up and records the outcome.
    cfg = pool_yaml().replace("testing_adapter.TestingAdapter", "host_killer_adapter.HostKillerAdapter")
    started = [nodes(nats_js.url, name, cfg, "--job-deliveries", "2")
               for name in ("alpha", "beta", "gamma")]
    r = cli("submit", "--nats", nats_js.url, "--job-id", "doomed-1", "work", "kill_host")
    assert r.returncode == 0, r.stderr
    r = result(nats_js.url, "doomed-1", 40000)
    assert r.returncode == 6, (r.returncode, r.stdout, r.stderr)
    assert "job doomed-1 (tool 'kill_host' in pool 'work') failed on every one of its 2 " \
           "deliveries; last: node " in r.stderr, r.stderr
    assert "went away without an outcome" in r.stderr
    dead = [n.name for n in started if n.proc.poll() is not None]
    assert len(dead) == 2, dead
    assert f"last: node {dead[-1]} " in r.stderr or f"last: node {dead[0]} " in r.stderr
    # The survivor keeps serving, jobs and calls alike.
    cli("submit", "--nats", nats_js.url, "--job-id", "after-1", "work", "add", '{"a": 2, "b": 3}')
    assert result(nats_js.url, "after-1").stdout.strip() == "5"


def test_job_deliveries_option_is_checked(nats_js, tmp_path):
    r = cli("serve", "--nats", nats_js.url, "--job-deliveries", "0", "-c", str(tmp_path / "x.yaml"))
    assert r.returncode == 2 and "--job-deliveries" in r.stderr, r.stderr


def test_job_with_array_arguments(tmp_path, nodes):
    np = pytest.importorskip("numpy")
    # A small max_payload shows the limit; JetStream keeps what fits.
    server = NatsServer(tmp_path, jetstream=True, conf="max_payload: 8192\n")
    try:
        nodes(server.url, "alpha")
        np.save(tmp_path / "v.npy", np.arange(6, dtype=np.int32).reshape(2, 3))
        r = cli("submit", "--nats", server.url, "--job-id", "arr-1", "--array",
                f"value={tmp_path / 'v.npy'}", "work", "echo")
        assert r.returncode == 0, r.stderr
        r = result(server.url, "arr-1")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == [[0, 1, 2], [3, 4, 5]]  # returned arrays: JSON lists
        np.save(tmp_path / "big.npy", np.zeros(4096, dtype=np.float64))
        r = cli("submit", "--nats", server.url, "--job-id", "arr-2", "--array",
                f"value={tmp_path / 'big.npy'}", "work", "echo")
        assert r.returncode != 0
        assert "(with arrays) for tool 'echo' in pool 'work' exceed the NATS server's " \
               "max_payload of 8192 bytes" in r.stderr, r.stderr
        r = cli("submit", "--nats", server.url, "--out", str(tmp_path), "work", "echo")
        assert r.returncode == 2 and "submit takes no --out" in r.stderr, r.stderr
    finally:
        server.stop()
