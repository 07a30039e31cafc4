"""uwsgi_app.py - the uWSGI side of the HTTP benchmark (bench/http/bench_http.py).

The same work per request as snakepit's no-op tool: decode the JSON arguments,
call a Python function that does nothing, encode its result as JSON.
"""

import json


def noop():
    """The tool: does nothing (testing_adapter.TestingAdapter.noop)."""
    return None


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    args = json.loads(raw) if raw else {}
    body = json.dumps(noop(**args)).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
