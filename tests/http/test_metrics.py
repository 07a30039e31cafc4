"""GET /metrics: well-formed Prometheus text (checked by the strict parser in
promtext.py, and by prometheus_client's when it is installed) whose figures
follow the calls made.
"""

import math

import pytest

import promtext

REQUIRED = {
    "snakepit_calls_total": "counter",
    "snakepit_pool_calls_total": "counter",
    "snakepit_call_duration_seconds": "histogram",
    "snakepit_pool_queue_depth": "gauge",
    "snakepit_pool_busy_slots": "gauge",
    "snakepit_pool_idle_slots": "gauge",
    "snakepit_workers": "gauge",
    "snakepit_worker_recycles_total": "counter",
    "snakepit_worker_crashes_total": "counter",
    "snakepit_fork_server_starts_total": "counter",
    "snakepit_pool_attach_wait_seconds": "gauge",
    "snakepit_pool_gil_enabled_workers": "gauge",
    "snakepit_pool_gil_reenabled_total": "counter",
    "snakepit_worker_attach_wait_seconds_total": "counter",
    "snakepit_worker_gil_enabled": "gauge",
    "snakepit_worker_rss_bytes": "gauge",
    "snakepit_worker_pss_bytes": "gauge",
    "snakepit_worker_uss_bytes": "gauge",
    "snakepit_pool_pss_bytes": "gauge",
    "snakepit_pool_uss_bytes": "gauge",
    "snakepit_pool_workers_current": "gauge",
    "snakepit_pool_min_workers": "gauge",
    "snakepit_pool_max_workers": "gauge",
    "snakepit_pool_scale_ups_total": "counter",
    "snakepit_pool_scale_downs_total": "counter",
    "snakepit_http_requests_total": "counter",
}


def scrape(server):
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return body.decode()


def test_metrics_are_well_formed_and_complete(server):
    server.call("tp", "noop")
    fams = promtext.parse(scrape(server))
    for name, kind in REQUIRED.items():
        assert name in fams, name
        assert fams[name]["type"] == kind, (name, fams[name]["type"])
        assert fams[name]["help"], name
    pools = {"tp", "tt", "sat", "qt", "crash", "racy", "checked"}
    assert {l["pool"] for _, l, _ in fams["snakepit_call_duration_seconds"]["samples"]} == pools
    states = {l["state"] for _, l, _ in fams["snakepit_workers"]["samples"]}
    assert {"starting", "ready", "draining", "stopping", "dead"} <= states
    reasons = {l["reason"] for _, l, _ in fams["snakepit_worker_recycles_total"]["samples"]}
    assert {"max_requests", "ttl", "max_rss", "cancel_grace"} <= reasons
    assert promtext.value(fams, "snakepit_workers", pool="tt", state="ready") == 1
    assert promtext.value(fams, "snakepit_pool_idle_slots", pool="tt") + \
        promtext.value(fams, "snakepit_pool_busy_slots", pool="tt") == 4
    assert promtext.value(fams, "snakepit_worker_rss_bytes", pool="tp") > 1 << 20
    # Shared pages (libpython, the fork server's imports) count in RSS only.
    for name in ("snakepit_worker_pss_bytes", "snakepit_worker_uss_bytes"):
        for _, labels, v in fams[name]["samples"]:
            if labels["pool"] == "tp":
                rss = promtext.value(fams, "snakepit_worker_rss_bytes", **labels)
                assert 0 < v < rss, (name, labels, v, rss)
    assert promtext.value(fams, "snakepit_pool_pss_bytes", pool="tp") > 1 << 20
    # A fixed pool: current = desired = min = max, never scaled.
    size = promtext.value(fams, "snakepit_pool_size", pool="tt")
    for name in ("snakepit_pool_workers_current", "snakepit_pool_min_workers",
                 "snakepit_pool_max_workers"):
        assert promtext.value(fams, name, pool="tt") == size, name
    assert promtext.value(fams, "snakepit_pool_scale_ups_total", pool="tt") == 0
    assert promtext.value(fams, "snakepit_fork_server_starts_total", pool="tt") == 1


def test_metrics_follow_the_calls(server):
    before = promtext.parse(scrape(server))
    for _ in range(5):
        assert server.call("tt", "add", {"a": 1, "b": 2})[0] == 200
    assert server.call("tt", "fail")[0] == 500
    assert server.call("tt", "add", {"a": "x", "b": 2})[0] == 400
    after = promtext.parse(scrape(server))

    def delta(name, **labels):
        return promtext.value(after, name, **labels) - promtext.value(before, name, **labels)

    assert delta("snakepit_calls_total", pool="tt", tool="add", outcome="ok") == 5
    assert delta("snakepit_calls_total", pool="tt", tool="fail", outcome="python") == 1
    assert delta("snakepit_pool_calls_total", pool="tt", outcome="ok") == 5
    assert delta("snakepit_pool_calls_total", pool="tt", outcome="python") == 1
    assert delta("snakepit_pool_calls_total", pool="tt", outcome="validation") == 1
    assert delta("snakepit_call_duration_seconds_count", pool="tt") >= 6
    assert delta("snakepit_call_duration_seconds_bucket", pool="tt", le="+Inf") >= 6
    assert delta("snakepit_call_duration_seconds_sum", pool="tt") > 0
    assert delta("snakepit_http_requests_total", route="call", code="200") >= 5
    assert delta("snakepit_http_requests_total", route="call", code="500") >= 1
    assert delta("snakepit_http_requests_total", route="metrics", code="200") >= 1


def test_histogram_buckets_are_in_seconds(server):
    fams = promtext.parse(scrape(server))
    les = [l["le"] for n, l, _ in fams["snakepit_call_duration_seconds"]["samples"]
           if n.endswith("_bucket") and l["pool"] == "tp"]
    assert les[0] == "0.00005" and "1" in les and les[-1] == "+Inf"
    assert all(float(x) > 0 or x == "+Inf" for x in les)


def test_parser_rejects_malformed_text():
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{p=\"1\"} 3\n"
    promtext.parse(good)
    bad = [
        good.rstrip("\n"),                                         # no final newline
        good + "a_total{p=\"1\"} 4\n",                             # duplicate series
        good + "# TYPE a_total counter\n",                         # second TYPE
        "a_total 1\n# TYPE a_total counter\n",                     # TYPE after samples
        "# TYPE b gauge\nb{p=\"x} 1\n",                            # unterminated label
        "# TYPE b gauge\nb{p=\"\\x\"} 1\n",                        # bad escape
        "# TYPE b gauge\nb 1e\n",                                  # bad value
        "# TYPE b gauge\nb 1\n# TYPE c gauge\nc 1\nb{x=\"1\"} 2\n",  # family split
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
        "# TYPE c counter\nc 1\n",                                 # counter not *_total
    ]
    for text in bad:
        with pytest.raises(promtext.ParseError):
            promtext.parse(text)


def test_reference_parser_agrees(server):
    parser = pytest.importorskip("prometheus_client.parser")
    text = scrape(server)
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    # prometheus_client strips _total from counter family names.
    assert fams["snakepit_calls"].type == "counter"
    assert fams["snakepit_call_duration_seconds"].type == "histogram"
    ours = promtext.parse(text)
    n_ours = sum(len(f["samples"]) for f in ours.values())
    n_ref = sum(len(f.samples) for f in fams.values())
    assert n_ours == n_ref
    for f in fams.values():
        for s in f.samples:
            assert not math.isnan(s.value)
