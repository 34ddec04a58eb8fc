#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: FastAPI `def` endpoints, whose work runs in anyio's thread pool
under uvicorn's event loop (tests/servers/fastapi_pool_app.py). The pool
thread's CPU is the request's: the brief's "work handed to a thread pool
follows the wakeup".

Requests one at a time, on one keep-alive connection, costing 2 or 30 ms in
turn in the pool thread. Each record's CPU must hold its own job's CPU (the
pool thread's clock, 5% or 1 ms below at most) and no other job's: at most
10% or 4 ms more: the loop's share (routing, validation, the response) and
the traps of the runtime reader's uprobes, which the kernel counts as the
traced threads' CPU (5-7 us each on this VM, some 80 a request;
bench/README.md). `test_fastapi.py --clients 4` runs N requests on each of
4 connections at once: the CPython runtime reader (docs/python.md) keeps
each job its request's, as anyio runs it in a copy of the request task's
context.
"""

import argparse
import http.client
import os
import tempfile
import threading
import time

import agentprof_test as at
import drive

HOST = "127.0.0.1"
COSTS = [2, 30]
N = 12


def get(conn, i, rid):
    return drive.request(conn, "GET", "/sync/%d?ms=%d" % (i, COSTS[i % 2]), rid, "simple")


def run_clients(port, clients):
    """N requests on each of clients keep-alive connections at once."""
    results = [[] for _ in range(clients)]

    def one(k):
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        for i in range(N):
            if i:
                # The pool thread back asleep on its queue (drive.POOL_GAP_S).
                time.sleep(drive.POOL_GAP_S)
            results[k].append(get(conn, i, "f-%d-%d" % (k, i)))
        conn.close()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [s for r in results for s in r]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=1)
    clients = p.parse_args().clients
    n = N * clients
    with tempfile.TemporaryDirectory(prefix="agentprof-fastapi-") as tmp:
        truth_path = os.path.join(tmp, "truth.jsonl")
        reqs_path = os.path.join(tmp, "requests.jsonl")
        srv, port = at.start_server("fastapi", truth_path)
        try:
            # FastAPI's first request sets things up once, and starts the pool thread.
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            warm = get(conn, 0, at.WARM_UP)
            conn.close()
        except BaseException:
            at.stop_server(srv)
            raise
        sent, rc, out, err, _ = at.traced(srv, ["-p", srv.pid], reqs_path,
                                          os.path.join(tmp, "p.json"),
                                          lambda ap: run_clients(port, clients))
        at.check("agentprof exits 0", rc == 0, err[-300:])
        at.check("client saw no errors", not warm["error"] and not [s for s in sent if s["error"]],
                 [warm["error"]] + [s["error"] for s in sent if s["error"]][:3])
        truth = at.load_truth(truth_path)
        pairs = at.match(at.load_jsonl(reqs_path), truth)
        at.check("every request recorded once", len(pairs) == n and len(truth) == n,
                 "%d matched, %d truth lines, %d sent" % (len(pairs), len(truth), n))
        at.check("premise: the work ran in another thread than the loop",
                 truth and all(t["tid"] != srv.pid for t in truth), [t["tid"] for t in truth])
        bad = [(t["request_id"], round(r["cpu_ns"] / 1e6, 2), round(t["worker_cpu_ns"] / 1e6, 2))
               for r, t in pairs
               if not (t["worker_cpu_ns"] - max(0.05 * t["worker_cpu_ns"], 1e6) <= r["cpu_ns"]
                       <= t["worker_cpu_ns"] + max(0.10 * t["worker_cpu_ns"], 4e6))]
        at.check("each request's CPU is its pool job's (+ the loop's share)", not bad,
                 "%d bad (id, agentprof ms, pool thread ms): %s" % (len(bad), bad[:4]))
        threads = [r["threads"] for r, _ in pairs]
        if clients == 1:
            at.check("threads: the loop and the pool thread", threads and set(threads) == {2},
                     threads)
        else:
            # Overlapping, a pool thread that took a job and another
            # request's hand-over before it ran may count for both.
            at.check("threads: the loop and the pool thread at least",
                     threads and min(threads) >= 2, threads)
    at.report()


if __name__ == "__main__":
    main()
