#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A thread-per-request HTTP server whose requests run a known number of
statements through psycopg2 (libpq, which links libssl) over TLS.

  GET /tls/<id>?n=K   K statements `SELECT <literal> + 1`, one round trip each
  GET /reconnect/<id>?n=K   the same on a new connection: the thread's is
                      closed first, and the new one may reuse its fd
  GET /warm/<id>?n=K  the same on the connection --warm opened at start, in
                      the main thread, before any request (a pool connecting)

Usage: pg_tls_server.py --port 0 --dsn DSN [--warm]   (prints "listening PORT")
"""

import argparse
import http.server
import sys
import threading
import urllib.parse

import psycopg2

LOCAL = threading.local()
DSN = None
WARM = None
WARM_LOCK = threading.Lock()


def conn():
    if not hasattr(LOCAL, "conn"):
        LOCAL.conn = psycopg2.connect(DSN)
        LOCAL.conn.autocommit = True
    return LOCAL.conn


def run(cur, n):
    """The TLS check, then n statements; returns whether the connection uses TLS."""
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    tls = cur.fetchone()[0]
    for i in range(n):
        cur.execute("SELECT %s + 1", (271828000 + i,))
        cur.fetchall()
    return tls


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        n = int(dict(urllib.parse.parse_qsl(url.query)).get("n", "3"))
        if url.path.startswith("/reconnect/") and hasattr(LOCAL, "conn"):
            LOCAL.conn.close()
            del LOCAL.conn
        if url.path.startswith("/warm/"):
            with WARM_LOCK:
                tls = run(WARM.cursor(), n)
        else:
            tls = run(conn().cursor(), n)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        # The TLS check above is one more round trip.
        self.send_header("X-PG-Round-Trips", str(n + 1))
        self.send_header("X-PG-TLS", "1" if tls else "0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    global DSN, WARM
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--warm", action="store_true")
    args = ap.parse_args()
    DSN = args.dsn
    if args.warm:
        WARM = psycopg2.connect(DSN)
        WARM.autocommit = True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
