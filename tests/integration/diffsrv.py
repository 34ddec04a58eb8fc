#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Recordings of tests/servers/diff_server.py for test_report.py and test_diff.py.

record(tmp, name, port, slow_ms=0, extra_query=False) starts the server
with that change (or none), traces it with `agentprof record -o`, drives
PER_ROUTE requests to each route over CONNS keep-alive connections, and
returns (profile path, truth lines, agentprof's stdout and stderr).
"""

import http.client
import os
import sys
import threading
import time

import agentprof_test as at

sys.path.insert(0, os.path.join(at.ROOT, "tests", "pg"))
import pgtest  # noqa: E402

SERVER = os.path.join(at.ROOT, "tests", "servers", "diff_server.py")
ROUTES = {"/items/:id": "/items/{i}", "/users/:id": "/users/{i}", "/search": "/search?q=w{i}",
          "/health": "/health"}
PER_ROUTE = 250
CONNS = 2


def _drive(port, name, errors):
    def worker(w):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(w, PER_ROUTE, CONNS):
            for route, path in ROUTES.items():
                rid = "%s-%s-%d" % (name, route.strip("/").split("/")[0], i)
                rec = pgtest.get(conn, path.format(i=1000 + i), rid)
                if rec["error"] or rec["status"] != 200:
                    errors.append("%s: %s %s" % (path, rec["status"], rec["error"]))
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def record(tmp, name, port, slow_ms=0, extra_query=False, args=()):
    truth = os.path.join(tmp, "truth-%s.jsonl" % name)
    prof = os.path.join(tmp, "profile-%s.json" % name)
    reqs = os.path.join(tmp, "requests-%s.jsonl" % name)
    open(truth, "w").close()
    cmd = [at.PYTHON, SERVER, "--port", str(port), "--truth", truth, "--slow-ms", str(slow_ms)]
    if extra_query:
        cmd.append("--extra-query")
    srv, port = pgtest.spawn(cmd)
    errors = []

    def work(ap):
        # One request first: the server's first one pays its lazy imports.
        pgtest.get(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "/health",
                   name + "-warm")
        _drive(port, name, errors)
        deadline = time.monotonic() + 10
        while len(at.load_jsonl(truth)) < PER_ROUTE * len(ROUTES) + 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # the last records reach agentprof

    # srv is a Popen from pgtest.spawn: at.traced stops it the same way.
    _, rc, out, err, _ = at.traced(srv, ["-p", srv.pid] + list(args), reqs, prof, work)
    if errors:
        raise RuntimeError("%s: %d requests failed, e.g. %s" % (name, len(errors), errors[0]))
    if rc != 0:
        raise RuntimeError("agentprof record exited %s: %s" % (rc, err))
    return prof, at.load_jsonl(truth), out, err
