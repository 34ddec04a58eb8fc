#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""diff_server - a small HTTP/1.1 service on PostgreSQL whose changes are known,
for `agentprof report` and `agentprof diff` (test_report.py, test_diff.py).

Usage: diff_server.py --port N [--truth FILE] [--slow-ms MS] [--extra-query]

Thread per connection (keep-alive), psycopg2 (libpq: one Query and one
ReadyForQuery per execute) on a pool opened before tracing starts: the
server of tests/pg/pg_server.py with handlers of its own.

Endpoints (<id> is any path segment):
  GET /items/<id>     1 SELECT, then 4 ms asleep; --slow-ms MS sleeps MS more
  GET /users/<id>     2 SELECTs, 2 ms asleep; --extra-query runs a third SELECT
  GET /search?q=...   1 SELECT, 1 ms of CPU, 2 ms asleep
  GET /health         no PostgreSQL, 0.3 ms of CPU

Every response has X-PG-Round-Trips and echoes X-Request-Id. Truth line per
request: {request_id, path, route, round_trips, wall_ns, cpu_ns}.
"""

import argparse
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pg"))
import pg_server  # noqa: E402
import pgtest  # noqa: E402


def burn(ms):
    end = time.thread_time_ns() + int(ms * 1e6)
    x = 1
    while time.thread_time_ns() < end:
        for _ in range(200):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def query(self, conn, sql):
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        self.round_trips += 1

    def do_GET(self):
        wall0, cpu0 = time.monotonic_ns(), time.thread_time_ns()
        srv = self.server
        path = urllib.parse.urlsplit(self.path).path
        parts = path.split("/")
        route = "/" + parts[1] if len(parts) > 1 else "/"
        self.round_trips = 0
        conn = srv.pool.get()
        try:
            status = 200
            if route == "/items":
                self.query(conn, "SELECT id FROM generate_series(1, 3) AS id WHERE id = 2")
                time.sleep((4 + srv.slow_ms) / 1000)
            elif route == "/users":
                self.query(conn, "SELECT 'user', 1")
                self.query(conn, "SELECT count(*) FROM generate_series(1, 10)")
                if srv.extra_query:
                    self.query(conn, "SELECT now()")
                time.sleep(0.002)
            elif route == "/search":
                self.query(conn, "SELECT 'found', 42")
                burn(1)
                time.sleep(0.002)
            elif route == "/health":
                burn(0.3)
            else:
                status = 404
        finally:
            srv.pool.put(conn)
        body = b"ok\n" if status == 200 else b"not found\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-PG-Round-Trips", str(self.round_trips))
        rid = self.headers.get("X-Request-Id")
        if rid:
            self.send_header("X-Request-Id", rid)
        self.end_headers()
        self.wfile.write(body)
        srv.write_truth({"request_id": rid, "path": self.path, "route": route,
                         "round_trips": self.round_trips,
                         "wall_ns": time.monotonic_ns() - wall0,
                         "cpu_ns": time.thread_time_ns() - cpu0})


class Server(pg_server.Server):
    """pg_server's: the pool opened at start-up, the truth file; our handler."""

    def __init__(self, addr, truth, slow_ms, extra_query):
        super().__init__(addr, truth, pgtest.PG_PORT, 4)
        self.RequestHandlerClass = Handler
        self.slow_ms = slow_ms
        self.extra_query = extra_query


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--truth")
    ap.add_argument("--slow-ms", type=float, default=0)
    ap.add_argument("--extra-query", action="store_true")
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), a.truth, a.slow_ms, a.extra_query)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever(poll_interval=0.1)
    srv.server_close()


if __name__ == "__main__":
    main()
