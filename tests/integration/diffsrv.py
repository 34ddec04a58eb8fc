#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Recordings of tests/servers/diff_server.py for test_report.py and test_diff.py.

record(tmp, name, port, slow_ms=0, extra_query=False) starts the server
with that change (or none), traces it with `agentprof record -o`, drives
PER_ROUTE requests to each route over CONNS keep-alive connections, and
returns (profile path, truth lines, agentprof's stdout and stderr).

side_by_side(tmp, variants) does the same for several variants at once,
each server traced by its own `agentprof record`, the requests to them
interleaved: a host whose load changes while the test runs (other work on
a shared machine) then weighs on every variant alike, as bench/compare.sh
does for builds. Returns {name: (profile path, truth lines)}.
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


class Variant:
    """One diff_server with its change, its truth file and its recording."""

    def __init__(self, tmp, name, port, slow_ms=0, extra_query=False):
        self.name = name
        self.truth = os.path.join(tmp, "truth-%s.jsonl" % name)
        self.prof = os.path.join(tmp, "profile-%s.json" % name)
        self.reqs = os.path.join(tmp, "requests-%s.jsonl" % name)
        open(self.truth, "w").close()
        cmd = [at.PYTHON, SERVER, "--port", str(port), "--truth", self.truth,
               "--slow-ms", str(slow_ms)]
        if extra_query:
            cmd.append("--extra-query")
        self.srv, self.port = pgtest.spawn(cmd)
        self.ap = None
        self.conns = [None] * CONNS
        self.errors = []
        # The first request pays the server's lazy imports: not measured.
        pgtest.get(self.conn(0), "/health", name + "-warm")

    def conn(self, w):
        if self.conns[w] is None:
            self.conns[w] = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        return self.conns[w]

    def get(self, w, route, i):
        rid = "%s-%s-%d" % (self.name, route.strip("/").split("/")[0], i)
        rec = pgtest.get(self.conn(w), ROUTES[route].format(i=1000 + i), rid)
        if rec["error"] or rec["status"] != 200:
            self.errors.append("%s: %s %s" % (route, rec["status"], rec["error"]))
            self.conns[w] = None

    def wait_truth(self, timeout=10):
        deadline = time.monotonic() + timeout
        while len(at.load_jsonl(self.truth)) < PER_ROUTE * len(ROUTES) + 1:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def close(self):
        for c in self.conns:
            if c:
                c.close()


def _drive(variants):
    """CONNS workers, each sending every route's requests to every variant in turn."""

    def worker(w):
        for i in range(w, PER_ROUTE, CONNS):
            for route in ROUTES:
                for v in variants:
                    v.get(w, route, i)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def side_by_side(tmp, variants, args=()):
    """variants: [(name, port, slow_ms, extra_query)]; see the module's doc."""
    vs = []
    try:
        for name, port, slow_ms, extra_query in variants:
            vs.append(Variant(tmp, name, port, slow_ms, extra_query))
        for v in vs:
            v.ap = at.start_agentprof(["-p", v.srv.pid] + list(args), v.reqs, v.prof)
        _drive(vs)
        for v in vs:
            v.wait_truth()
        time.sleep(0.3)  # the last records reach agentprof
        out = {}
        for v in vs:
            rc, stdout, err = at.stop_agentprof(v.ap)
            v.ap = None
            if rc != 0:
                raise RuntimeError("agentprof record of %s exited %s: %s" % (v.name, rc, err))
            if v.errors:
                raise RuntimeError("%s: %d requests failed, e.g. %s" % (
                    v.name, len(v.errors), v.errors[0]))
            out[v.name] = (v.prof, at.load_jsonl(v.truth), stdout, err)
        return out
    finally:
        for v in vs:
            if v.ap:
                at.stop_agentprof(v.ap)
            v.close()
            at.stop_server(v.srv)


def record(tmp, name, port, slow_ms=0, extra_query=False, args=()):
    """One variant alone: (profile path, truth lines, agentprof's stdout, stderr)."""
    return side_by_side(tmp, [(name, port, slow_ms, extra_query)], args)[name]
