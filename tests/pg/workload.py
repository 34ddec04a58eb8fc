#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""The fixed request sequences the PostgreSQL tests send to each test server
(pg_server.py = "psycopg", pg_async_server.py = "asyncpg", pipeline_server =
"pipeline", node_pg_server.js = "node"). Used by tests/pg/selftest.py (servers alone, through a counting
proxy) and tests/integration/test_pg.py (under agentprof).

run(kind, port, ...) returns one dict per request (see pgtest.get) plus
"kind", "tag" and "concurrent"; after every request sent one at a time it
calls after(rec), so a caller can snapshot counters between requests.
"""

import http.client
import itertools
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgtest  # noqa: E402

HOST = "127.0.0.1"
_ids = itertools.count(1)
_ids_lock = threading.Lock()
PREFIX = "pg%d" % os.getpid()

# (path without the id, tag); sent in this order on one keep-alive connection
SEQUENTIAL = {
    "psycopg": [("/psycopg/{id}?n=3", "psycopg"), ("/psycopg/{id}?n=5", "psycopg"),
                ("/fail/{id}", "fail"), ("/many/{id}", "many"), ("/multi/{id}", "multi"),
                ("/nopg/{id}", "nopg"), ("/psycopg/{id}?n=0", "psycopg"),
                ("/fail/{id}", "fail"), ("/wait/{id}", "wait")],
    "asyncpg": [("/apg/{id}?n=3", "apg"), ("/apg/{id}?n=2", "apg"), ("/afail/{id}", "fail"),
                ("/afail/{id}", "fail"), ("/amany/{id}", "many"), ("/amulti/{id}", "multi"),
                ("/awarm/{id}", "warm"), ("/anopg/{id}", "nopg"), ("/apg/{id}?n=1", "apg"),
                ("/amany/{id}", "many"), ("/await/{id}", "wait")],
    "pipeline": [("/pipe/{id}?n=3", "pipe"), ("/prep/{id}", "prep"), ("/pfail/{id}", "fail"),
                 ("/pipe/{id}?n=1", "pipe"), ("/pmany/{id}", "many"), ("/nopg/{id}", "nopg"), ("/prep/{id}", "prep"),
                 ("/pipe/{id}?n=12", "pipe"), ("/pwait/{id}", "wait")],
    "node": [("/npg/{id}?n=3", "npg"), ("/npg/{id}?n=2", "npg"), ("/nnamed/{id}", "named"),
             ("/nnamed/{id}", "named"), ("/nfail/{id}", "fail"), ("/nmany/{id}", "many"),
             ("/nmulti/{id}", "multi"), ("/nnopg/{id}?ms=20", "nopg"),
             ("/nburn/{id}?ms=30", "burn"), ("/nfresh/{id}", "connect"), ("/npg/{id}?n=0", "npg"),
             ("/nwait/{id}", "wait")],
}
# then each on a new connection (a new server thread for the threaded servers)
NEW_CONN = {
    "psycopg": [("/psycopg/{id}?n=2", "psycopg"), ("/fail/{id}", "fail")],
    "asyncpg": [("/apg/{id}?n=2", "apg"), ("/afail/{id}", "fail")],
    "pipeline": [("/pipe/{id}?n=2", "pipe"), ("/pfail/{id}", "fail")],
    "node": [("/npg/{id}?n=2", "npg"), ("/nfail/{id}", "fail")],
}
# then concurrently: CONC_CLIENTS keep-alive clients, CONC_EACH requests each
# (the thread-per-connection servers, and node's one event loop)
CONC = {
    "psycopg": ["/psycopg/{id}?n=%d" % n for n in (1, 2, 3, 4)] + ["/fail/{id}"],
    "pipeline": ["/pipe/{id}?n=%d" % n for n in (1, 2, 3)] + ["/prep/{id}", "/pfail/{id}"],
    # one event loop: handlers that await PostgreSQL (pg_sleep) overlap
    # with others that burn CPU or run statements meanwhile
    "node": ["/nburn/{id}?ms=20&sleep=0.05", "/npg/{id}?n=2", "/nnamed/{id}", "/nfail/{id}",
             "/nburn/{id}?ms=10", "/nnopg/{id}?ms=5"],
}
CONC_CLIENTS = 4


def next_id():
    with _ids_lock:
        return "%s-%d" % (PREFIX, next(_ids))


def one(conn, tmpl, tag, kind, close=False, concurrent=False):
    rid = next_id()
    path = tmpl.format(id=rid.rsplit("-", 1)[1])
    rec = pgtest.get(conn, path, rid, close=close)
    rec.update(kind=kind, tag=tag, concurrent=concurrent)
    return rec


def run(kind, port, fresh_port=None, sleep_kill=None, after=None):
    """Sends kind's workload to 127.0.0.1:port.

    fresh_port: for psycopg, also GET /fresh?port=fresh_port (a connection
    opened in the request to a port that is not a configured PG port).
    sleep_kill: for psycopg, a callable run in a thread next to GET /sleep; it
    must kill the backend (pgtest.terminate_when_running).
    """
    after = after or (lambda rec: None)
    sent = []
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    for tmpl, tag in SEQUENTIAL[kind]:
        sent.append(one(conn, tmpl, tag, kind))
        after(sent[-1])
    conn.close()
    for tmpl, tag in NEW_CONN[kind]:
        c = http.client.HTTPConnection(HOST, port, timeout=30)
        sent.append(one(c, tmpl, tag, kind, close=True))
        c.close()
        after(sent[-1])
    if kind == "psycopg":
        c = http.client.HTTPConnection(HOST, port, timeout=30)
        sent.append(one(c, "/garbage/{id}", "garbage", kind))
        after(sent[-1])
        if fresh_port:
            sent.append(one(c, "/fresh/{id}?port=%d" % fresh_port, "fresh", kind))
            after(sent[-1])
        if sleep_kill:
            killer = threading.Thread(target=sleep_kill)
            killer.start()
            sent.append(one(c, "/sleep/{id}?s=20", "sleep", kind))
            killer.join()
            after(sent[-1])
        # the server and its other connections still work
        sent.append(one(c, "/psycopg/{id}?n=2", "psycopg", kind))
        after(sent[-1])
        c.close()
    if kind in CONC:
        out = [[] for _ in range(CONC_CLIENTS)]

        def client(i):
            c = http.client.HTTPConnection(HOST, port, timeout=30)
            for k in range(len(CONC[kind])):
                tmpl = CONC[kind][(i + k) % len(CONC[kind])]
                tag = tmpl.split("/")[1]
                out[i].append(one(c, tmpl, tag, kind, concurrent=True))
            c.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CONC_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for o in out:
            sent += o
    return sent
