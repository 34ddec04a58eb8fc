#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""pg_server - thread-per-connection HTTP/1.1 test server whose requests run a
known number of PostgreSQL statements through psycopg2 (libpq, simple
protocol, autocommit: one Query message and one ReadyForQuery per execute).

Usage: pg_server.py --port N [--truth FILE] [--pg-port P] [--pool N]

A pool of --pool connections is opened at start-up (before agentprof starts
tracing, as in a real service); each request takes one. psycopg2 interpolates
parameters client-side, so every literal below is in the statement text that
goes over the wire. Number literals are unique (31337001, ...), string
literals are 'secret-<hex>'; every one used is listed in the truth line.

Endpoints (<id> is any path segment):
  GET /psycopg/<id>?n=K  K x "SELECT <lit> + 1", then one string literal behind
                         a comment that holds a secret too, then an IN-list
  GET /fail/<id>         good, division by zero (ErrorResponse), good
  GET /many/<id>         SELECT generate_series(1, 20000): 20000 rows
  GET /multi/<id>        "SELECT <lit>; SELECT <lit>": one Query, 1 round trip
  GET /garbage/<id>      random bytes, then an absurd length field, written on
                         raw TCP connections to the PostgreSQL port; then one
                         good statement over the pool
  GET /sleep/<id>?s=S    SELECT pg_sleep(S) on its own connection; the test
                         kills the backend meanwhile (pg_terminate_backend)
  GET /fresh/<id>?port=P opens a new connection to port P (not a configured
                         PostgreSQL port: found by its StartupMessage), runs
                         2 statements, closes it
  GET /wait/<id>         SELECT pg_sleep(0.1): the thread blocks 100 ms on PG
  GET /nopg/<id>         no PostgreSQL at all
Every response has X-PG-Round-Trips (the round trips the handler completed)
and echoes X-Request-Id. Truth line per request (JSON):
  {request_id, method, path, status, tid, round_trips, rows, errors,
   statements: [{fingerprint, rows, error}], literals: [...], died}
fingerprint is the normalized text agentprof must report.
"""

import argparse
import json
import os
import queue
import random
import signal
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgtest  # noqa: E402

MANY_ROWS = 20000
GARBAGE_SEED = 20240501
WAIT_S = "0.1"


class Ctx:
    """What one request did, for its truth line."""

    def __init__(self):
        self.statements = []
        self.literals = []
        self.died = False

    def run(self, conn, sql, params, fingerprint, lits=()):
        """Executes one statement (one round trip); records it. Returns rows or raises."""
        self.literals += [str(x) for x in lits]
        st = {"fingerprint": fingerprint, "rows": 0, "error": False}
        self.statements.append(st)
        with conn.cursor() as cur:
            try:
                cur.execute(sql, params)
            except psycopg2.Error:
                st["error"] = True
                raise
            rows = cur.fetchall() if cur.description is not None else []
        st["rows"] = len(rows)
        return rows


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentprof-pg-server"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.split("/")
        q = dict(urllib.parse.parse_qsl(u.query))
        route = parts[1] if len(parts) == 3 and parts[2] else None
        ctx = Ctx()
        status = 200
        fn = getattr(self, "h_" + route, None) if route else None
        if fn is None:
            status = 404
        else:
            try:
                fn(ctx, q)
            except Exception as e:  # noqa: BLE001 - reported to the client
                status = 500
                sys.stderr.write("pg_server: %s: %s: %s\n" % (self.path, type(e).__name__, e))
        rid = self.headers.get("X-Request-Id")
        # A statement whose backend was killed is a round trip that failed.
        done = ctx.statements
        truth = {
            "request_id": rid, "method": "GET", "path": self.path, "status": status,
            "tid": threading.get_native_id(), "pid": os.getpid(),
            "round_trips": len(done),
            "rows": sum(s["rows"] for s in done),
            "errors": sum(1 for s in done if s["error"]),
            "statements": ctx.statements, "literals": ctx.literals, "died": ctx.died,
        }
        self.server.write_truth(truth)
        body = json.dumps({"round_trips": len(done)}).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-PG-Round-Trips", str(len(done)))
        if rid is not None:
            self.send_header("X-Request-Id", rid)
        self.end_headers()
        self.wfile.write(body)

    # ---- endpoints ----

    def h_psycopg(self, ctx, q):
        n = max(0, min(int(q.get("n", "3")), 200))
        conn = self.server.pool.get()
        try:
            for _ in range(n):
                v = pgtest.literal()
                ctx.run(conn, "SELECT %s + 1", (v,), "SELECT $1 + $2", [v])
            s1, s2 = pgtest.secret(), pgtest.secret()
            # the comment holds a secret too: comments are dropped
            ctx.run(conn, "/* caller " + s1 + " */ SELECT %s::text AS s", (s2,),
                    "SELECT $1::text AS s", [s1, s2])
            ids = tuple(pgtest.literal() for _ in range(3))
            ctx.run(conn, "SELECT count(*) FROM generate_series(1, 9) AS g WHERE g IN %s",
                    (ids,), "SELECT count(*) FROM generate_series($1, $2) AS g WHERE g IN (...)",
                    ids)
        finally:
            self.server.pool.put(conn)

    def h_fail(self, ctx, q):
        conn = self.server.pool.get()
        try:
            v = pgtest.literal()
            ctx.run(conn, "SELECT %s + 1", (v,), "SELECT $1 + $2", [v])
            v = pgtest.literal()
            try:
                ctx.run(conn, "SELECT %s / 0", (v,), "SELECT $1 / $2", [v])
            except psycopg2.errors.DivisionByZero:
                pass
            v = pgtest.literal()
            ctx.run(conn, "SELECT %s + 1", (v,), "SELECT $1 + $2", [v])
        finally:
            self.server.pool.put(conn)

    def h_many(self, ctx, q):
        conn = self.server.pool.get()
        try:
            ctx.run(conn, "SELECT generate_series(1, %d)" % MANY_ROWS, None,
                    "SELECT generate_series($1, $2)")
        finally:
            self.server.pool.put(conn)

    def h_multi(self, ctx, q):
        conn = self.server.pool.get()
        try:
            a, b = pgtest.literal(), pgtest.literal()
            # one Query message, two statements: 2 DataRows, 1 ReadyForQuery
            with conn.cursor() as cur:
                ctx.literals += [str(a), str(b)]
                cur.execute("SELECT %s; SELECT %s", (a, b))
                cur.fetchall()
            ctx.statements.append({"fingerprint": "SELECT $1; SELECT $2", "rows": 2,
                                   "error": False})
        finally:
            self.server.pool.put(conn)

    def h_garbage(self, ctx, q):
        rnd = random.Random(GARBAGE_SEED)
        junk = [bytes(rnd.randrange(256) for _ in range(300)),
                # a Query-looking message with an absurd length, then more bytes
                b"Q\x7f\xff\xff\xf0" + b"SELECT 1" * 8,
                # a plausible start-up length with an unknown protocol
                b"\x00\x00\x00\x10\x00\x07\x00\x00" + bytes(8)]
        for data in junk:
            s = socket.create_connection((pgtest.PG_HOST, self.server.pg_port), timeout=5)
            try:
                s.sendall(data)
                while s.recv(4096):
                    pass
            except OSError:
                pass
            finally:
                s.close()
        conn = self.server.pool.get()
        try:
            v = pgtest.literal()
            ctx.run(conn, "SELECT %s + 1", (v,), "SELECT $1 + $2", [v])
        finally:
            self.server.pool.put(conn)

    def h_sleep(self, ctx, q):
        s = max(1, min(int(q.get("s", "5")), 30))
        conn = self.server.sleep_conn
        try:
            ctx.run(conn, "SELECT pg_sleep(%d)" % s, None, "SELECT pg_sleep($1)")
        except psycopg2.OperationalError:
            ctx.died = True
        if conn.closed:
            self.server.sleep_conn = None
            self.server.sleep_conn = psycopg2.connect(self.server.dsn)
            self.server.sleep_conn.autocommit = True

    def h_fresh(self, ctx, q):
        port = int(q["port"])
        conn = psycopg2.connect(pgtest.dsn(port=port))
        try:
            conn.autocommit = True
            for _ in range(2):
                v = pgtest.literal()
                ctx.run(conn, "SELECT %s + 1", (v,), "SELECT $1 + $2", [v])
        finally:
            conn.close()

    def h_wait(self, ctx, q):
        conn = self.server.pool.get()
        try:
            ctx.run(conn, "SELECT pg_sleep(%s)" % WAIT_S, None, "SELECT pg_sleep($1)")
        finally:
            self.server.pool.put(conn)

    def h_nopg(self, ctx, q):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, truth, pg_port, pool_size):
        super().__init__(addr, Handler)
        self.truth_lock = threading.Lock()
        self.truth = open(truth, "a") if truth else None
        self.pg_port = pg_port
        self.dsn = pgtest.dsn(port=pg_port)
        self.pool = queue.Queue()
        for _ in range(pool_size):
            self.pool.put(self.connect())
        self.sleep_conn = self.connect()

    def connect(self):
        c = psycopg2.connect(self.dsn)
        c.autocommit = True
        return c

    def write_truth(self, obj):
        if self.truth:
            with self.truth_lock:
                self.truth.write(json.dumps(obj) + "\n")
                self.truth.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--truth")
    ap.add_argument("--pg-port", type=int, default=pgtest.PG_PORT)
    ap.add_argument("--pool", type=int, default=4)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), a.truth, a.pg_port, a.pool)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever(poll_interval=0.1)
    srv.server_close()


if __name__ == "__main__":
    main()
