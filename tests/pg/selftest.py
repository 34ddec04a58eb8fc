#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Self-test of the PostgreSQL test servers, without agentprof (root: it
creates the test role and database through `su postgres`).

Each server is pointed at a CountingProxy (tests/pg/pgtest.py) that parses the
protocol on the wire; for every request sent one at a time, the round trips
the server claims (X-PG-Round-Trips and its truth line) must equal the
ReadyForQuery messages the proxy saw, and its rows and errors the DataRow and
ErrorResponse messages. Concurrent requests are compared in sum.

Usage: tests/pg/selftest.py [psycopg|asyncpg|pipeline|node ...]
"""

import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import agentprof_test as at  # noqa: E402
import nodepg  # noqa: E402
import pgtest  # noqa: E402
import workload  # noqa: E402

PYTHON = "/usr/bin/python3"
PIPELINE_SRC = os.path.join(HERE, "pipeline_server.c")
PIPELINE_BIN = os.path.join(ROOT, "build", "tests", "pipeline_server")

check = at.check


def build_pipeline():
    return at.build_c_server(PIPELINE_SRC, PIPELINE_BIN,
                             cflags=["-I/usr/include/postgresql"], ldlibs=["-lpq"])


def server_cmd(kind):
    if kind == "psycopg":
        return [PYTHON, os.path.join(HERE, "pg_server.py")]
    if kind == "asyncpg":
        return [PYTHON, os.path.join(HERE, "pg_async_server.py")]
    if kind == "pipeline":
        return [build_pipeline()]
    if kind == "node":
        return nodepg.cmd()  # its packages: nodepg.install() first
    raise ValueError(kind)


def start(kind, truth, pg_port=pgtest.PG_PORT):
    open(truth, "w").close()
    return pgtest.spawn(server_cmd(kind) + ["--port", "0", "--truth", truth,
                                            "--pg-port", str(pg_port)], cwd=ROOT,
                        env=nodepg.env() if kind == "node" else None)


def wait_truth(path, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path) as f:
            if sum(1 for l in f if l.strip()) >= n:
                return
        time.sleep(0.02)


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def selftest(kind, tmp):
    proxy = pgtest.CountingProxy()
    fresh = pgtest.CountingProxy()
    truth_path = os.path.join(tmp, "truth-%s.jsonl" % kind)
    srv, port = start(kind, truth_path, pg_port=proxy.port)
    deltas = {}
    last = [proxy.counts()]

    def after(rec):
        time.sleep(0.05)  # the server answers a request before its last bytes are counted
        now = proxy.counts()
        if rec["tag"] == "fresh":
            now_f = fresh.counts()
            deltas[rec["request_id"]] = {k: now_f[k] for k in now_f}
        else:
            deltas[rec["request_id"]] = {k: now[k] - last[0][k] for k in now}
        last[0] = now

    t0 = time.monotonic()
    base = proxy.counts()
    try:
        sent = workload.run(kind, port, fresh_port=fresh.port,
                            sleep_kill=lambda: pgtest.terminate_when_running("SELECT pg_sleep("),
                            after=after)
        wait_truth(truth_path, len(sent))
        time.sleep(0.1)
        total = proxy.counts()
    finally:
        rc = at.stop_server(srv)
        proxy.close()
        fresh.close()
    pre = kind + ": "
    check(pre + "server exits cleanly", rc in (0, -15), "rc %s" % rc)
    truth = {t["request_id"]: t for t in load(truth_path)}
    errs = [(s["path"], s["error"]) for s in sent if s["error"]]
    check(pre + "no client errors", not errs, errs)
    check(pre + "one truth line per request", len(truth) == len(sent) and
          all(s["request_id"] in truth for s in sent), "%d/%d" % (len(truth), len(sent)))
    bad_status = [(s["path"], s["status"]) for s in sent if s["status"] != 200]
    check(pre + "every request 200", not bad_status, bad_status)
    bad = []
    for s in sent:
        t = truth.get(s["request_id"])
        if not t:
            continue
        if s["round_trips"] != t["round_trips"]:
            bad.append(("header", s["path"], s["round_trips"], t["round_trips"]))
        if t["round_trips"] != len([x for x in t["statements"]]) - (1 if t["died"] else 0):
            bad.append(("statements", s["path"], t))
        d = deltas.get(s["request_id"])
        if d is None:
            continue
        if d["round_trips"] != t["round_trips"]:
            bad.append(("wire round trips", s["path"], d, t["round_trips"]))
        if d["rows"] != t["rows"]:
            bad.append(("wire rows", s["path"], d, t["rows"]))
        # garbage gets an ErrorResponse from the server; a killed backend sends a FATAL one
        if s["tag"] not in ("garbage", "sleep") and d["errors"] != t["errors"]:
            bad.append(("wire errors", s["path"], d, t["errors"]))
    check(pre + "truth = wire, request by request", not bad, bad[:4])
    want = sum(t["round_trips"] for rid, t in truth.items()
               if not any(s["request_id"] == rid and s["tag"] == "fresh" for s in sent))
    check(pre + "truth = wire in total", total["round_trips"] - base["round_trips"] == want,
          "wire %d, truth %d" % (total["round_trips"] - base["round_trips"], want))
    died = [t for t in truth.values() if t["died"]]
    if kind == "psycopg":
        check(pre + "the /sleep backend was killed mid-query", len(died) == 1, died)
    many = [t for t in truth.values() if "many" in t["path"]]
    check(pre + "/many: a statement returns 20000 rows",
          many and all(max(x["rows"] for x in t["statements"]) == 20000 for t in many), many)
    fails = [t for t in truth.values() if "fail" in t["path"]]
    check(pre + "/fail: one error each", fails and all(t["errors"] == 1 for t in fails),
          [(t["path"], t["errors"]) for t in fails])
    print("# %s: %d requests, %d round trips, %.1f s" % (kind, len(sent), want,
                                                         time.monotonic() - t0))


def main():
    kinds = sys.argv[1:] or ["psycopg", "asyncpg", "pipeline", "node"]
    pgtest.setup_db()
    if "node" in kinds:
        why = nodepg.install()
        if not check("node: npm ci installs the server's packages", why is None, why):
            kinds.remove("node")
    with tempfile.TemporaryDirectory(prefix="agentprof-pg-") as tmp:
        for kind in kinds:
            selftest(kind, tmp)
    at.report()


if __name__ == "__main__":
    main()
