"""`snakepit serve` fronting remote pools over HTTP: /v1/pools, /readyz,
/metrics and `snakepit stats --url` list them next to the local pools, with
what this server's calls to them count, and /readyz follows their NATS
connection."""

import json
import os
import pty
import signal
import subprocess
import time
import urllib.error
import urllib.request

from conftest import ADAPTERS, BIN, cli


def get(url, path):
    try:
        with urllib.request.urlopen(url + path, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def on_terminal(*args):
    """The CLI's output with stdout on a pseudo-terminal."""
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, *args], stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    os.close(master)
    p.wait(30)
    return out.decode().replace("\r\n", "\n")


def start_front(cfg):
    front = subprocess.Popen([BIN, "serve", "-c", str(cfg), "--listen", "127.0.0.1:0", "-q"],
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = front.stderr.readline()
        if "listening on" in line:
            return front, line.split("listening on ")[1].split()[0]
    front.kill()
    raise AssertionError("the HTTP front end did not start")


def test_front_lists_remote_pools(tmp_path, nats, nodes):
    nodes(nats.url, "alpha")
    cfg = tmp_path / "front.yaml"
    cfg.write_text(f"pools:\n  - name: work\n    remote: {nats.url}\n    timeout: 10s\n"
                   f"  - name: here\n    pool_size: 1\n    worker_profile: process\n"
                   f"    adapter: testing_adapter.TestingAdapter\n"
                   f"    python_path: [{json.dumps(ADAPTERS)}]\n")
    front, url = start_front(cfg)
    try:
        for a in (1, 2, 3):
            req = urllib.request.Request(url + "/v1/pools/work/tools/add",
                                         data=json.dumps({"a": a, "b": 1}).encode(),
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()
        req = urllib.request.Request(url + "/v1/pools/work/tools/fail", data=b"{}",
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError:
            pass
        status, body = get(url, "/v1/pools")
        assert status == 200, body
        pools = {p["name"]: p for p in json.loads(body)["pools"]}
        assert set(pools) == {"work", "here"}
        work = pools["work"]
        assert work["kind"] == "remote" and work["url"] == nats.url and work["connected"] is True
        assert work["calls"] == {"total": 4, "ok": 3, "errors": 1} and work["in_flight"] == 0
        assert "kind" not in pools["here"] and pools["here"]["pool_size"] == 1

        status, body = get(url, "/readyz")
        assert status == 200, body
        ready = json.loads(body)
        assert ready["ready"] is True
        assert ready["pools"]["work"] == {"ready": True, "kind": "remote", "url": nats.url}

        status, text = get(url, "/metrics")
        assert status == 200
        assert f'snakepit_remote_pool_info{{pool="work",url="{nats.url}"}} 1' in text
        assert 'snakepit_remote_pool_calls_ok_total{pool="work"} 3' in text
        assert 'snakepit_remote_pool_calls_failed_total{pool="work"} 1' in text
        assert 'snakepit_remote_pool_connected{pool="work"} 1' in text
        # The local families stay local: no worker gauges for a remote pool.
        assert 'snakepit_pool_size{pool="here"} 1' in text
        assert 'snakepit_pool_size{pool="work"}' not in text

        r = cli("stats", "--url", url, "--json")
        assert r.returncode == 0, r.stderr
        assert {p["name"] for p in json.loads(r.stdout)["pools"]} == {"work", "here"}
        r = cli("stats", "--url", url, "work")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["kind"] == "remote"
        # On a terminal: a table row saying what the pool is.
        table = on_terminal("stats", "--url", url)
        assert "remote: " + nats.url + ", connected" in table, table
        row = next(line for line in table.splitlines() if line.startswith("work "))
        assert row.split()[1:3] == ["remote", "-"] and row.split()[6:9] == ["4", "3", "1"], row

        # Without its NATS server the remote pool is not ready, and says so.
        nats.stop()
        deadline = time.time() + 15
        while time.time() < deadline:
            status, body = get(url, "/readyz")
            if status == 503:
                break
            time.sleep(0.2)
        assert status == 503, body
        assert json.loads(body)["pools"]["work"]["ready"] is False
        assert json.loads(body)["pools"]["here"]["ready"] is True
        status, body = get(url, "/v1/pools")
        assert status == 200 and {p["name"]: p for p in json.loads(body)["pools"]}["work"][
            "connected"] is False
    finally:
        front.send_signal(signal.SIGTERM)
        front.wait(20)
