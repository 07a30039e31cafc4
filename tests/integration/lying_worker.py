#!/usr/bin/python3
"""A stand-in for snakepit-worker that lies: it speaks the wire protocol
(src/core/protocol.h) on fd 3, offers one tool, `bad`, and answers every call
with a RESULT whose array descriptors are malformed (an unknown dtype). The
manager must fail the call with a protocol error and replace the worker.
"""
import json
import os
import struct

HEADER = struct.Struct("<BBBBIQ")
HELLO, CALL, RESULT, PING, PONG, STATS, SHUTDOWN = 1, 2, 3, 7, 8, 9, 10
FLAG_ARRAYS = 1
fd = 3


def send(ftype, req_id, body, flags=0):
    os.write(fd, HEADER.pack(0x53, 2, ftype, flags, len(body), req_id) + body)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise SystemExit(0)
        buf += chunk
    return buf


manifest = {"adapter": "lying", "thread_safe": None,
            "tools": [{"name": "bad", "description": "", "supports_streaming": False,
                       "parameters": []}]}
send(HELLO, 0, json.dumps({"protocol": 2, "pid": os.getpid(), "python_version": "3",
                           "gil_enabled": True, "threads": 1, "worker_id": "w",
                           "manifest": manifest}).encode())
while True:
    _, _, ftype, _, length, req_id = HEADER.unpack(read_exact(HEADER.size))
    body = read_exact(length)
    if ftype == CALL:
        json_text = b"{\"$array\":0}"
        table = struct.pack("<IHBBB3xQQQ", 1, 1, 99, 1, 2, 0, 8, 1) + b"a" + b"\0" * 8
        send(RESULT, req_id, struct.pack("<I", len(json_text)) + json_text + table, FLAG_ARRAYS)
    elif ftype == PING:
        send(PONG, req_id, body[:8] + b"\0" * 16)
    elif ftype == SHUTDOWN:
        raise SystemExit(0)
