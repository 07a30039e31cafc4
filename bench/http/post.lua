-- post.lua - wrk script: POST an empty JSON object (the no-op tool's arguments).
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
