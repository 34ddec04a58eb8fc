#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: `agentprof record --sample 4` against the thread-per-request C
server and the asyncio server, which report their own per-request CPU time.

One request in four is traced, at random. What must hold:
  - every request is seen: records plus the run's `unsampled` count equal
    the requests sent, and the records number about a quarter of them;
  - each record is one request's, with its own CPU, bytes and status,
    within test_record's bounds. Requests cost 2 or 30 ms in turn, so a
    record charged with a neighbour's CPU (an untraced request's on the same
    connection, on the same event loop, or in the same pool thread) falls
    far outside them;
  - the profile counts each traced request four times.
"""

import json
import math
import os
import sys
import tempfile

import agentprof_test as at
import drive

HOST = "127.0.0.1"
SAMPLE = 4
COSTS = [2, 30]


def cost(i):
    return COSTS[i % len(COSTS)]


def run_workload(kind, port):
    sent = []
    if kind == "asyncio":
        # The pool thread works for a traced request, still open, when the
        # next, untraced, request hands it a job.
        sent += drive.pool(HOST, port, 40, ms=cost)
    sent += drive.keepalive(HOST, port, 100, ms=cost, after=lambda i: 10 if i % 5 == 0 else 0)
    sent += drive.concurrent(HOST, port, 4, 25, ms=cost)
    sent += drive.new_conn_each(HOST, port, 20, ms=cost)
    # Bodies read in several reads: the reads after an untraced head are its own.
    for _ in range(6):
        sent += drive.post(HOST, port, size=64 * 1024, ms=2)
    return sent


def neighbour_premise(sent, sampled_ids):
    """Traced keep-alive requests whose previous request on the connection was
    not traced and cost at least 20 ms more or less: where a leak would show."""
    n = 0
    prev = {}
    for s in sent:
        p = prev.get(s["conn"])
        if p and s["request_id"] in sampled_ids and p["request_id"] not in sampled_ids \
                and abs(drive.requested_ms(p["path"]) - drive.requested_ms(s["path"])) >= 20:
            n += 1
        prev[s["conn"]] = s
    return n


def pool_premise(sent, sampled_ids):
    """Traced pool requests followed by an untraced one of another cost."""
    pool = [s for s in sent if s["path"].startswith("/pool/")]
    return sum(1 for a, b in zip(pool, pool[1:])
               if a["request_id"] in sampled_ids and b["request_id"] not in sampled_ids
               and drive.requested_ms(a["path"]) != drive.requested_ms(b["path"]))


def check_server(kind, tmp):
    truth_path = os.path.join(tmp, "truth-%s.jsonl" % kind)
    reqs_path = os.path.join(tmp, "requests-%s.jsonl" % kind)
    prof_path = os.path.join(tmp, "profile-%s.json" % kind)
    srv, port = at.start_server(kind, truth_path)
    # One request before tracing, as in test_record: a server's first request
    # pays for lazy binding and first-touch page faults outside its own clock
    # (0.5 to 1.1 ms more CPU than the truth on the C server's first request).
    warm = drive.new_conn_each(HOST, port, 1, ms=1, prefix=at.WARM_UP)
    sent, rc, out, err, _ = at.traced(srv, ["-p", str(srv.pid), "--sample", SAMPLE],
                                      reqs_path, prof_path, lambda ap: run_workload(kind, port))
    pre = "%s, --sample %d: " % (kind, SAMPLE)
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, stderr %s" % (rc, err[-500:]))
    at.check(pre + "client saw no errors", not [s for s in sent if s["error"]],
             [s["error"] for s in sent if s["error"]][:3])
    at.check(pre + "warm-up request answered before tracing", warm and not warm[0]["error"],
             warm)
    truth = at.load_truth(truth_path)
    recs = at.load_jsonl(reqs_path)
    with open(prof_path) as f:
        prof = json.load(f)
    run = prof["run"]
    n = len(sent)
    at.check(pre + "server wrote one truth line per request", len(truth) == n,
             "%d truth lines, %d sent" % (len(truth), n))
    at.check(pre + "every request seen: records + unsampled = requests sent",
             len(recs) + run.get("unsampled", -1) == n and run["records"] == len(recs),
             "%d records, %s unsampled, %d sent" % (len(recs), run.get("unsampled"), n))
    # Binomial(n, 1/4): five standard deviations either way.
    mean, sd = n / SAMPLE, math.sqrt(n * (1 / SAMPLE) * (1 - 1 / SAMPLE))
    at.check(pre + "about one request in %d traced" % SAMPLE,
             abs(len(recs) - mean) <= 5 * sd,
             "%d records of %d requests (expected %.0f +- %.0f)" % (len(recs), n, mean, 5 * sd))
    at.check(pre + "summary names the sampling",
             ("sampled 1 in %d" % SAMPLE) in err and run.get("sample_every") == SAMPLE,
             (err[-300:], run.get("sample_every")))
    pairs = at.match(recs, truth)
    at.check(pre + "every record is one request's",
             len(pairs) == len(recs) and not at.duplicates(recs),
             "%d matched of %d records, duplicates %s" % (len(pairs), len(recs),
                                                          at.duplicates(recs)[:3]))
    sampled_ids = {t["request_id"] for _, t in pairs}
    premise = neighbour_premise(sent, sampled_ids)
    at.check(pre + "premise: traced requests follow untraced ones of another cost",
             premise >= 5, "%d such requests" % premise)
    if kind == "asyncio":
        premise = pool_premise(sent, sampled_ids)
        at.check(pre + "premise: traced pool jobs followed by untraced ones of another cost",
                 premise >= 3, "%d such requests" % premise)
    bad = {k: [] for k in ("cpu", "bytes", "status", "route")}
    rel, abs_ns = (0.05, 1_000_000) if kind == "c" else (0.10, 2_000_000)
    for rec, t in pairs:
        rid = t["request_id"]
        if not at.near(rec["cpu_ns"], t["cpu_ns"], rel, abs_ns):
            bad["cpu"].append((rid, rec["cpu_ns"], t["cpu_ns"]))
        if rec["rx_bytes"] != t["rx_bytes"] or rec["tx_bytes"] != t["tx_bytes"]:
            bad["bytes"].append((rid, rec["rx_bytes"], t["rx_bytes"], rec["tx_bytes"],
                                 t["tx_bytes"]))
        if rec["status"] != t["status"]:
            bad["status"].append((rid, rec["status"], t["status"]))
        if rec["path"] != t["path"]:
            bad["route"].append((rid, rec["path"], t["path"]))
    worst = sorted(((rec["cpu_ns"] - t["cpu_ns"]) / 1e6, t["request_id"], rec.get("runq_ns", 0) / 1e6)
                   for rec, t in pairs)
    print("# %s: cpu, agentprof less the server's, ms (id, runq ms): lowest %s, highest %s" % (
        pre, [(round(d, 3), i, round(q, 2)) for d, i, q in worst[:2]],
        [(round(d, 3), i, round(q, 2)) for d, i, q in worst[-3:]]))
    for k, v in bad.items():
        at.check(pre + "per-request " + k + " of traced requests", not v,
                 "%d bad, e.g. %s" % (len(v), v[:4]))
    counts = {}
    for r in recs:
        counts[(r["method"], r["route"])] = counts.get((r["method"], r["route"]), 0) + SAMPLE
    got = {}
    for g in prof["groups"]:
        got[(g["method"], g["route"])] = got.get((g["method"], g["route"]), 0) + g["requests"]
    at.check(pre + "profile counts each traced request %d times" % SAMPLE, got == counts,
             "profile %s, records x %d %s" % (got, SAMPLE, counts))
    cpu_sum = sum(g["metrics"]["cpu_ns"]["count"] for g in prof["groups"])
    at.check(pre + "profile histograms weigh them alike", cpu_sum == SAMPLE * len(recs),
             "cpu_ns count %d, records x %d = %d" % (cpu_sum, SAMPLE, SAMPLE * len(recs)))


def main():
    with tempfile.TemporaryDirectory(prefix="agentprof-test-") as tmp:
        for kind in sys.argv[1:] or ("c", "asyncio"):
            check_server(kind, tmp)
    at.report()


if __name__ == "__main__":
    main()
