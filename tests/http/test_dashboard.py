"""The dashboard (GET /) in headless Chromium (Debian's `chromium`), driven over
the DevTools protocol (cdp.py, stdlib only): the page loads, shows the pools of
the config and their workers, and its figures change after calls are made,
without reloading; a remote pool (a node over NATS) gets its own card. A screenshot goes to the build folder (http_dashboard.png).
"""

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cdp import CDP
from conftest import BIN, BUILD_DIR, Server, pool_yaml

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(BUILD_DIR) / "http_dashboard.png"


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def browser(tmp_path):
    """Starts Chromium on about:blank; yields a function opening a page as a CDP client."""
    assert os.access(CHROMIUM, os.X_OK), "Debian's chromium is needed: scripts/install-deps.sh test"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = open(tmp_path / "chromium.log", "w")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-default-browser-check", "--mute-audio", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         "--window-size=1280,1250", "about:blank"],
        stdout=log, stderr=log, start_new_session=True)
    clients = []
    try:
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30, "DevToolsActivePort")
        port = int(port_file.read_text().split()[0])

        def open_page(url):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # no proxy from the env
            c.request("GET", "/json/list")
            targets = [t for t in json.loads(c.getresponse().read()) if t["type"] == "page"]
            c.close()
            c = CDP(targets[0]["webSocketDebuggerUrl"])
            clients.append(c)
            c.call("Page.enable")
            c.call("Page.navigate", url=url)
            return c

        yield open_page
    finally:
        for c in clients:
            c.close()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def field(page, pool, name):
    """The text of a figure, with no-break spaces read as spaces."""
    text = page.eval(f"(document.querySelector('[data-pool=\"{pool}\"] [data-field=\"{name}\"]') || {{}}).textContent")
    return text.replace("\u00a0", " ") if text else text


def number(text):
    return float(text.replace(",", "").split()[0]) if text and text[0].isdigit() else 0.0


def test_dashboard_shows_pools_and_live_figures(tmp_path, browser):
    s = Server(tmp_path, "pools:\n" + pool_yaml("tp") + pool_yaml("tt", "thread", threads=4))
    try:
        page = browser(s.url + "/")
        pools = wait_for(lambda: page.eval("[...document.querySelectorAll('section.pool')].map(e => e.dataset.pool)")
                         if page.eval("document.querySelectorAll('section.pool').length") == 2 else None,
                         20, "the pools to appear")
        assert pools == ["tp", "tt"]
        assert page.eval("document.title") == "Snakepit"
        wait_for(lambda: page.eval("document.getElementById('conn').textContent") == "live", 10, "live status")
        # The workers table shows the real worker processes.
        stats = s.get_json("/v1/pools/tt")
        pid = stats["workers"][0]["pid"]
        assert page.eval("[...document.querySelectorAll('[data-pool=\"tt\"] tr[data-pid]')].map(r => +r.dataset.pid)") == [pid]
        row = page.eval("document.querySelector('[data-pool=\"tt\"] tr[data-pid]').textContent")
        assert "ready" in row and "MiB" in row
        assert field(page, "tt", "profile") == "thread · 1 × 4"
        before = number(field(page, "tt", "calls_total"))
        requests_before = number(page.eval("document.querySelector('[data-pool=\"tt\"] [data-field=\"requests\"]').textContent"))

        # Calls until the screenshot is taken, so the per-second figures have something to show.
        done = threading.Event()

        def load():
            i = 0
            while not done.is_set() and i < 3000:
                s.call("tt", "sleep", {"seconds": 0.002})
                if i % 4 == 0:
                    s.call("tp", "add", {"a": i, "b": 1})
                i += 1
            done.set()

        t = threading.Thread(target=load)
        t.start()
        try:
            rates = []

            def moved():
                rates.append(number(field(page, "tt", "rate")))
                return number(field(page, "tt", "calls_total")) >= before + 40 and max(rates) > 0

            wait_for(moved, 15, "the dashboard's figures to follow the calls")
            time.sleep(2.5)  # a few more seconds of chart
            # Latency percentiles of the window and a chart with points.
            assert field(page, "tt", "p50") not in ("–", None)
            assert field(page, "tt", "p99") not in ("–", None)
            assert page.eval("state.pools.get('tt').series.some(p => p.rate > 0)")
            assert page.eval("(() => { const c = document.querySelector('[data-pool=\"tt\"] canvas');"
                             " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                             " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()") > 1000
            shot = page.call("Page.captureScreenshot", format="png")
        finally:
            done.set()
            t.join()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
        assert SCREENSHOT.stat().st_size > 10000

        after = number(field(page, "tt", "calls_total"))
        assert after >= before + 40, (before, after)
        requests_after = number(page.eval("document.querySelector('[data-pool=\"tt\"] [data-field=\"requests\"]').textContent"))
        assert requests_after > requests_before
        assert number(field(page, "tp", "calls_total")) >= 10
        assert page.eval("document.getElementById('banner').classList.contains('hidden')")
    finally:
        assert s.stop() == 0


def test_dashboard_shows_calls_back_and_stays_readable(tmp_path, browser):
    """Nested calls, the calls waiting on one, and refusals of a pool whose tools
    call back, as its stats count them; every figure fits its box."""
    callback = "callback_adapter.CallbackAdapter"
    s = Server(tmp_path, "pools:\n" + pool_yaml("ca", size=2, adapter=callback)
               + pool_yaml("cb", "thread", threads=2, adapter=callback))
    napper = None
    try:
        page = browser(s.url + "/")
        # Until the page has loaded, about:blank has no #conn.
        wait_for(lambda: page.eval("(document.getElementById('conn') || {}).textContent") == "live",
                 20, "live status")
        wait_for(lambda: field(page, "ca", "callbacks") == "0 · 0 host", 10, "the calls back figure")
        assert field(page, "ca", "callbacks_detail") == "0 waiting · 0 refused"

        for i in range(3):  # into the other pool, and one into its own (a free worker is left)
            status, _, body = s.call("ca", "relay", {"pool": "cb", "tool": "add", "args": {"a": i, "b": 1}})
            assert status == 200 and json.loads(body) == i + 1, body
        status, _, body = s.call("ca", "relay", {"pool": "ca", "tool": "add", "args": {"a": 2, "b": 2}})
        assert status == 200 and json.loads(body) == 4, body
        # `snakepit serve` registers no host function: the call is refused, and counted so.
        status, _, body = s.call("ca", "host", {"name": "lookup", "catch": True})
        assert status == 200 and json.loads(body)["error"]["code"] == "SP_ENOFUNC", body
        # One call that holds its slot while its nested call runs.
        napper = threading.Thread(target=s.call, args=("ca", "relay", {
            "pool": "cb", "tool": "nap", "args": {"seconds": 4}}))
        napper.start()

        def waiting_shown():
            st = s.get_json("/v1/pools/ca")
            return (st["calls_waiting_nested"] == 1
                    and field(page, "ca", "callbacks_detail") == "1 waiting · 1 refused") and st

        st = wait_for(waiting_shown, 10, "the waiting call on the dashboard")
        assert (st["nested_calls"], st["host_function_calls"], st["nested_refused"]) == (5, 0, 1)
        assert field(page, "ca", "callbacks") == "5 · 0 host"
        # The called pool made no calls back of its own: its figures stay at zero.
        assert field(page, "cb", "callbacks") == "0 · 0 host"

        # Readable: the four-column grid of figures is full rows, and no figure
        # is wider than its box.
        assert page.eval("document.querySelectorAll('[data-pool=\"ca\"] .kpi').length") % 4 == 0
        overflow = page.eval("[...document.querySelectorAll('.kpi .value, .kpi .sub, .kpi .label')]"
                             ".filter(e => e.scrollWidth > e.clientWidth + 1)"
                             ".map(e => e.closest('[data-pool]').dataset.pool + ':' + e.textContent)")
        assert overflow == [], overflow
        shot = page.call("Page.captureScreenshot", format="png")
        (Path(BUILD_DIR) / "http_dashboard_callbacks.png").write_bytes(base64.b64decode(shot["data"]))

        napper.join(15)
        wait_for(lambda: field(page, "ca", "callbacks_detail") == "0 waiting · 1 refused", 10,
                 "the waiting call to end on the dashboard")
    finally:
        if napper is not None:
            napper.join(15)
        assert s.stop() == 0


def test_dashboard_shows_a_remote_pool(tmp_path, browser):
    """A pool served by a node over NATS gets its own card with what this
    server's calls to it count, next to the local pools."""
    nats_server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(nats_server, os.X_OK):
        pytest.skip("nats-server is not installed (scripts/install-deps.sh test installs it)")
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nats = subprocess.Popen([nats_server, "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    node = None
    s = None
    try:
        def nats_up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False

        wait_for(nats_up, 10, "nats-server")
        (node_dir / "pools.yaml").write_text("pools:\n" + pool_yaml("far"))
        node_log = open(node_dir / "node.log", "w")
        node = subprocess.Popen([BIN, "serve", "--nats", url, "-c", str(node_dir / "pools.yaml")],
                                stdout=subprocess.DEVNULL, stderr=node_log)
        wait_for(lambda: "serving pools" in (node_dir / "node.log").read_text(), 30, "the node")
        s = Server(tmp_path, "pools:\n" + pool_yaml("tp")
                   + f"  - name: far\n    remote: {url}\n")
        page = browser(s.url + "/")
        wait_for(lambda: page.eval("document.querySelectorAll('section.pool').length") == 2, 20,
                 "both pools to appear")
        wait_for(lambda: page.eval("document.getElementById('conn').textContent") == "live", 10, "live status")
        for i in range(5):
            assert s.call("far", "add", {"a": i, "b": 1})[0] == 200
        assert s.call("far", "fail")[0] == 500
        wait_for(lambda: field(page, "far", "calls_total") == "6", 10, "the remote pool's calls")
        assert field(page, "far", "calls_ok") == "5" and field(page, "far", "calls_failed") == "1"
        assert field(page, "far", "health") == "connected" and field(page, "far", "url") == url
        assert number(field(page, "tp", "calls_total")) == 0  # the local card is untouched
        assert page.eval("document.getElementById('banner').classList.contains('hidden')")
    finally:
        if s is not None:
            s.stop()
        for p in (node, nats):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
