#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Mode parity: the same workloads, recorded in every mode this kernel
supports, give the same per-request results.

agentprof loads in one of several modes (docs/verifier.md): socket or
syscall tracepoints for socket I/O, tp_btf or raw_tp for the scheduler,
with or without bpf_loop for the PostgreSQL walk. The other integration
tests each check one mode against the workload's own truth; this one runs
the same workloads in each mode, one after the other, and compares the
modes with each other as well as with the truth:

- the C thread-per-request server under 4 concurrent keep-alive clients:
  per request, route, status and bytes must be equal in every mode, and
  CPU within 10% or 2 ms of the server's own thread CPU clock in each;
- the asyncpg server (one event loop, one shared connection, overlapping
  requests that await PostgreSQL mid-request) and the psycopg server: per
  request, the PostgreSQL round trips and their statements' fingerprints
  must be equal in every mode and equal to the truth; errors and rows too,
  except where a mode promises them unknown (without bpf_loop).

Usage: test_modes.py   (root; PostgreSQL 15/main, started if down)
"""

import os
import sys
import tempfile
import time

import agentprof_test as at
import drive
import test_pg

PG_DIR = os.path.join(at.ROOT, "tests", "pg")
sys.path.insert(0, PG_DIR)
import pgtest  # noqa: E402

HOST = "127.0.0.1"
COSTS = [3, 12, 25]
# Every variable that forces a mode (tests/run sets some of them itself).
MODE_VARS = ("AGENTPROF_SYSCALL_IO", "AGENTPROF_FORCE_RAW_TP", "AGENTPROF_NO_BPF_LOOP",
             "AGENTPROF_THREAD_HASH")


def supported_modes():
    """(name, {variable: "1"}) per mode this kernel supports, best first."""
    modes = []
    if os.path.isdir("/sys/kernel/tracing/events/sock/sock_recv_length"):
        modes.append(("socket tracepoints", {}))
    modes.append(("syscall tracepoints", {"AGENTPROF_SYSCALL_IO": "1"}))
    modes.append(("raw_tp", {"AGENTPROF_FORCE_RAW_TP": "1"}))
    modes.append(("without bpf_loop", {"AGENTPROF_NO_BPF_LOOP": "1"}))
    return modes


def set_mode(env):
    """agentprof_test starts agentprof with os.environ and checks its mode from it."""
    for v in MODE_VARS:
        os.environ.pop(v, None)
    os.environ.update(env)


def cpu_run(tmp, name):
    """Concurrent keep-alive clients on the C server; returns {request_id: facts}."""
    truth_path = os.path.join(tmp, "cpu-truth-%s.jsonl" % name)
    reqs_path = os.path.join(tmp, "cpu-reqs-%s.jsonl" % name)
    srv, port = at.start_server("c", truth_path)
    # One request before tracing, as test_record does: a server's first
    # requests pay for lazy binding and first page faults outside its clock.
    warm = drive.new_conn_each(HOST, port, 1, ms=1, prefix=at.WARM_UP)
    at.check("%s: C server: warm-up request answered before tracing" % name,
             warm and not warm[0]["error"], warm)
    sent, rc, _, err, _ = at.traced(
        srv, ["-p", srv.pid], reqs_path, os.path.join(tmp, "cpu-prof-%s.json" % name),
        lambda ap: drive.concurrent(HOST, port, 4, 6, ms=lambda i: COSTS[i % len(COSTS)],
                                    prefix="modes"))
    at.check("%s: C server: agentprof exits 0" % name, rc == 0, err[-400:])
    truth = at.load_truth(truth_path)
    pairs = at.match(at.load_jsonl(reqs_path), truth)
    at.check("%s: C server: every request recorded" % name, len(pairs) == len(sent) == 24,
             "%d matched, %d sent" % (len(pairs), len(sent)))
    bad = [(t["request_id"], r["cpu_ns"], t["cpu_ns"]) for r, t in pairs
           if not at.near(r["cpu_ns"], t["cpu_ns"], rel=0.1, abs_ns=2_000_000)]
    at.check("%s: C server: CPU within 10%% or 2 ms of the server's clock" % name, not bad,
             bad[:4])
    # Ids differ from run to run: compare what does not depend on them, bytes
    # as their difference from the server's own count.
    return sorted((r["route"], r["status"], r["rx_bytes"] - t["rx_bytes"],
                   r["tx_bytes"] - t["tx_bytes"]) for r, t in pairs)


def pg_facts(r, no_loop):
    """A PostgreSQL run's per-request facts, in an order that does not depend on ids."""
    truth = {t["request_id"]: t for t in r["truth"]}
    facts = []
    for rec, t in at.match(r["recs"], r["truth"]):
        pg = rec.get("pg") or {}
        fps = tuple(q.get("fingerprint") or "" for q in pg.get("queries") or [])
        f = (t["path"].split("/")[1], pg.get("round_trips", 0), fps)
        if not no_loop:
            f += (pg.get("errors", 0), pg.get("rows", 0))
        facts.append((f, t["round_trips"], truth[t["request_id"]]["round_trips"]))
    return sorted(facts)


def pg_run(tmp, name, kind, no_loop):
    r = test_pg.run_kind(kind, tmp, sleep_kill=False)
    pre = "%s: %s: " % (name, kind)
    at.check(pre + "agentprof exits 0", r["rc"] == 0, r["err"][-400:])
    facts = pg_facts(r, no_loop)
    at.check(pre + "every request recorded (%d)" % len(r["sent"]),
             r["sent"] and len(facts) == len(r["sent"]),
             "%d of %d" % (len(facts), len(r["sent"])))
    wrong = [f for f in facts if f[0][1] != f[1]]
    at.check(pre + "round trips = the server's count, per request", not wrong, wrong[:4])
    return [f[0] for f in facts]


def compare(what, runs):
    """runs: [(mode name, facts)]: every mode's facts equal the first's."""
    base_name, base = runs[0]
    for name, facts in runs[1:]:
        diff = sorted(set(map(repr, facts)) ^ set(map(repr, base)))
        at.check("%s: %s agrees with %s (%d requests)" % (what, name, base_name, len(base)),
                 base and facts == base,
                 "%d vs %d facts; first differences %s" % (len(facts), len(base), diff[:4]))


def main():
    saved = {v: os.environ.get(v) for v in MODE_VARS}
    cpu, apg, psy = [], [], []
    try:
        with pgtest.running(), tempfile.TemporaryDirectory(prefix="agentprof-modes-") as tmp:
            pgtest.setup_db()
            for name, env in supported_modes():
                set_mode(env)
                t0 = time.monotonic()
                no_loop = "AGENTPROF_NO_BPF_LOOP" in env
                cpu.append((name, cpu_run(tmp, name)))
                apg.append((name, pg_run(tmp, name, "asyncpg", no_loop)))
                psy.append((name, pg_run(tmp, name, "psycopg", no_loop)))
                print("# %s: %.1f s" % (name, time.monotonic() - t0), flush=True)
    finally:
        set_mode({v: x for v, x in saved.items() if x is not None})
    at.check("at least three modes ran", len(cpu) >= 3, [n for n, _ in cpu])
    compare("C server (route, status, bytes per request)", cpu)
    # Without bpf_loop, errors and rows are unknown: compare what it promises.
    full = [(n, f) for n, f in apg if n != "without bpf_loop"]
    compare("asyncpg (round trips, fingerprints, errors, rows)", full)
    compare("psycopg (round trips, fingerprints, errors, rows)",
            [(n, f) for n, f in psy if n != "without bpf_loop"])
    trimmed = [(n, [x[:3] for x in f]) for n, f in apg]
    compare("asyncpg (round trips, fingerprints), every mode", trimmed)
    at.report()


if __name__ == "__main__":
    main()
