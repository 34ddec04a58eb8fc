#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A FastAPI service with a `def` endpoint, for agentprof's thread-pool test.

Usage: fastapi_pool_app.py --port N --truth FILE

FastAPI runs `def` endpoints in anyio's thread pool, under uvicorn's asyncio
event loop: the work of the request is handed to a pool thread.

  GET /sync/<id>?ms=N    burn N ms of CPU in the pool thread, 200

Each request appends one JSON line to the truth file: its X-Request-Id and
the CPU the pool thread burnt for it (time.thread_time_ns around the burn).
Prints "listening PORT" once it accepts connections.
"""

import argparse
import json
import threading
import time

from fastapi import FastAPI, Header
from fastapi.responses import PlainTextResponse
import uvicorn

from uvicorn_listening import Server

app = FastAPI()
truth_lock = threading.Lock()
truth_fp = None


def burn_cpu_ns(ns):
    start = time.thread_time_ns()
    while time.thread_time_ns() - start < ns:
        pass
    return time.thread_time_ns() - start


@app.get("/sync/{rid}")
def sync_endpoint(rid: str, ms: int = 5, x_request_id: str = Header(default="")):
    worker_cpu_ns = burn_cpu_ns(min(ms, 60000) * 1_000_000)
    with truth_lock:
        truth_fp.write(json.dumps({"request_id": x_request_id, "path_id": rid,
                                   "worker_cpu_ns": worker_cpu_ns,
                                   "tid": threading.get_native_id()}) + "\n")
        truth_fp.flush()
    return PlainTextResponse("ok %s\n" % rid, headers={"X-Request-Id": x_request_id})


def main():
    global truth_fp
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--truth", required=True)
    a = p.parse_args()
    truth_fp = open(a.truth, "a")
    Server(uvicorn.Config(app, host="127.0.0.1", port=a.port, log_level="warning")).run()


if __name__ == "__main__":
    main()
