#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Summary of a `make demo` run (tools/demo.sh), from the files in its output
directory:

  requests.jsonl     agentprof's per-request records
  profile.json       agentprof's profile (per service, route, class)
  locust_stats.csv   Locust's own per-request-name counts
  agent_cpu.txt      "TICKS_BEFORE TICKS_AFTER CLK_TCK" of the agent process
  state/agent.log    the agent's log: each login's PBKDF2 thread CPU

Prints Locust's request count next to agentprof's per route (Locust names
requests by route template, as agentprof does), the difference and what it
is made of, then a per-class summary (the X-Request-Class header), how
many logins were charged at least the CPU of their own PBKDF2, and writes
summary.json. Columns for fields the records do not carry yet show
"-".

Exit status 1 if a demo route has no request or the counts differ by more
than the requests that can be in flight at the stop (one per Locust user).

Usage: demo_report.py OUT_DIR [--users N] [--locust-rc RC]
"""

import argparse
import csv
import json
import math
import os
import sys

ROUTES = ["/auth/login", "/agent/conversation", "/agent/query", "/agent/conversation/:id/end"]
CLASS_ORDER = ["simple", "moderate", "complex", "control"]


def pct(values, p):
    """Nearest-rank percentile of a list of numbers (None if empty)."""
    if not values:
        return None
    v = sorted(values)
    k = max(1, math.ceil(p / 100.0 * len(v)))
    return v[k - 1]


def fmt_ms(ns, digits=2):
    return "-" if ns is None else "%.*f" % (digits, ns / 1e6)


def load_records(path):
    recs, bad = [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    bad += 1
    except FileNotFoundError:
        pass
    return recs, bad


def load_locust(path):
    """{(method, name): (requests, failures)} from locust_stats.csv."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("Name") == "Aggregated" or not row.get("Type"):
                continue
            out[(row["Type"], row["Name"])] = (int(row["Request Count"]), int(row["Failure Count"]))
    return out


def profile_counts(path):
    """{(method, route): requests} summed over the profile's groups (None if unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            prof = json.load(f)
    except (OSError, ValueError):
        return None
    out = {}
    for g in prof.get("groups", []):
        key = (g.get("method"), g.get("route"))
        out[key] = out.get(key, 0) + int(g.get("requests", 0))
    return out


def upstream_wait_ns(rec):
    """Time waiting on non-PostgreSQL upstreams (None if the record has no such field)."""
    ups = rec.get("upstream")
    if ups is None:
        return None
    return sum(u.get("wait_ns", 0) for u in ups if u.get("kind") != "pg")


def pg_round_trips(rec):
    pg = rec.get("pg")
    return None if pg is None else pg.get("round_trips")


def agent_hash_cpu_ns(out):
    """The thread CPU of each login's PBKDF2 hashes, as the agent timed it."""
    try:
        with open(os.path.join(out, "state", "agent.log")) as f:
            return [int(line.split()[2]) for line in f if line.startswith("login hash_cpu_ns ")]
    except OSError:
        return []


def logins_vs_pbkdf2(recs, hashes, slack_ns=200_000):
    """(login CPU, PBKDF2 CPU) pairs, and how many logins cost at least their hashes.

    Records and the agent's log lines do not pair up, but if every login's
    CPU is at least its own hashes', the k-th smallest of one is at least
    the k-th smallest of the other. Both clocks are the thread's
    sum_exec_runtime, read a few µs apart: slack_ns covers that.
    """
    logins = sorted(r.get("cpu_ns", 0) for r in recs if r.get("route") == "/auth/login")
    pairs = list(zip(logins, sorted(hashes)))
    return pairs, sum(1 for c, h in pairs if c >= h - slack_ns)


def table(rows, header, right):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for r in [header] + rows:
        cells = [(str(c).rjust(w) if right[i] else str(c).ljust(w))
                 for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--users", type=int, default=0,
                    help="Locust users: at most that many requests in flight at the stop")
    ap.add_argument("--locust-rc", type=int, default=0)
    args = ap.parse_args()
    out = args.out

    recs, bad = load_records(os.path.join(out, "requests.jsonl"))
    locust = load_locust(os.path.join(out, "locust_stats.csv"))
    prof = profile_counts(os.path.join(out, "profile.json"))
    problems = []

    # ---------------------------------------------------------- per route
    ap_counts = {}
    for r in recs:
        key = (r.get("method"), r.get("route"))
        ap_counts[key] = ap_counts.get(key, 0) + 1
    keys = sorted(set(ap_counts) | set(locust),
                  key=lambda k: (ROUTES.index(k[1]) if k[1] in ROUTES else 99, str(k)))
    rows, route_summary = [], []
    total_abs = 0
    for key in keys:
        method, route = key
        lc, lf = locust.get(key, (None, None))
        n = ap_counts.get(key, 0)
        pn = prof.get(key, 0) if prof is not None else None
        if lc is None:
            diff, note = None, "not a Locust request"
        else:
            diff = n - lc
            total_abs += abs(diff)
            if diff == 0:
                note = "same count"
            elif diff > 0:
                note = ("%d in flight at Locust's stop: the agent finished them after "
                        "Locust stopped counting" % diff)
            else:
                note = ("%d counted by Locust but not finished while agentprof traced "
                        "(in flight at the stop, or missed)" % -diff)
            if lf:
                note += "; %d failed in Locust's eyes (status or SLO)" % lf
        rows.append([method, route, "-" if lc is None else lc, n,
                     "-" if pn is None else pn,
                     "-" if diff is None else "%+d" % diff, note])
        route_summary.append({"method": method, "route": route, "locust": lc,
                              "locust_failures": lf, "agentprof": n,
                              "profile": pn, "diff": diff})
    print("=== requests per route: Locust (client side) vs agentprof (kernel side) ===")
    print(table(rows, ["METHOD", "ROUTE", "LOCUST", "AGENTPROF", "PROFILE", "DIFF", "NOTE"],
                [False, False, True, True, True, True, False]))
    print("(AGENTPROF: records in requests.jsonl; PROFILE: the same summed over "
          "profile.json's groups; DIFF: AGENTPROF - LOCUST)")
    limit = args.users
    verdict = "agree" if total_abs == 0 else (
        "agree within the requests in flight at the stop" if total_abs <= limit
        else "DISAGREE")
    print("counts: total |DIFF| %d, in flight at most %d (one per Locust user): %s"
          % (total_abs, limit, verdict))
    if limit and total_abs > limit:
        problems.append("per-route counts differ by %d > %d users" % (total_abs, limit))
    for route in ROUTES:
        if not any(k[1] == route and c > 0 for k, c in ap_counts.items()):
            problems.append("agentprof recorded no %s request" % route)
    if prof is not None and prof != ap_counts:
        problems.append("profile.json's group counts differ from requests.jsonl")
    if bad:
        problems.append("%d unparsable lines in requests.jsonl" % bad)

    # ---------------------------------------------------------- per class
    by_class = {}
    for r in recs:
        cls = (r.get("headers") or {}).get("x-request-class", "-")
        by_class.setdefault(cls, []).append(r)
    classes = sorted(by_class, key=lambda c: (CLASS_ORDER.index(c) if c in CLASS_ORDER else 99, c))
    rows, class_summary = [], []
    for cls in classes:
        rs = by_class[cls]
        cpu = [r.get("cpu_ns", 0) for r in rs]
        lat = [r.get("duration_ns", 0) for r in rs]
        pg = [x for x in (pg_round_trips(r) for r in rs) if x is not None]
        ups = [x for x in (upstream_wait_ns(r) for r in rs) if x is not None]
        routes = sorted({r.get("route") for r in rs},
                        key=lambda x: ROUTES.index(x) if x in ROUTES else 99)
        rows.append([cls, len(rs), fmt_ms(pct(cpu, 50)), fmt_ms(pct(cpu, 95)),
                     fmt_ms(pct(lat, 50), 1), fmt_ms(pct(lat, 95), 1),
                     "-" if not pg else "%.1f" % (sum(pg) / len(pg)),
                     fmt_ms(pct(ups, 50), 1), fmt_ms(pct(ups, 95), 1),
                     ", ".join(routes)])
        class_summary.append({"class": cls, "requests": len(rs),
                              "cpu_ns_p50": pct(cpu, 50), "cpu_ns_p95": pct(cpu, 95),
                              "duration_ns_p50": pct(lat, 50), "duration_ns_p95": pct(lat, 95)})
    print()
    print("=== per request class (X-Request-Class), from agentprof's records ===")
    print(table(rows, ["CLASS", "REQS", "CPU_P50", "CPU_P95", "LAT_P50", "LAT_P95",
                       "PG_RT/REQ", "UPS_P50", "UPS_P95", "ROUTES"],
                [False] + [True] * 8 + [False]))
    print("(ms; CPU: on-CPU time of the request; LAT: first request byte to last response "
          "byte; PG_RT/REQ: mean PostgreSQL round trips; UPS: time waiting on the LLM "
          "upstream; - : not in the records)")

    # ------------------------------------------------ CPU coverage
    cpu_line = None
    try:
        with open(os.path.join(out, "agent_cpu.txt")) as f:
            before, after, hz = (int(x) for x in f.read().split())
        proc_s = (after - before) / hz
        req_s = sum(r.get("cpu_ns", 0) for r in recs) / 1e9
        cpu_line = ("agent process CPU while loaded: %.2f s; attributed to requests: "
                    "%.2f s (%.0f%%)" % (proc_s, req_s, 100 * req_s / proc_s if proc_s else 0))
        print()
        print(cpu_line)
    except (OSError, ValueError):
        pass

    # ------------------------------------------------ logins and their PBKDF2
    hashes = agent_hash_cpu_ns(out)
    pairs, good = logins_vs_pbkdf2(recs, hashes)
    if pairs:
        print("logins charged at least their own PBKDF2's CPU (the agent's clock): "
              "%d of %d (%.0f%%); %d logins recorded, %d hashed"
              % (good, len(pairs), 100.0 * good / len(pairs),
                 sum(1 for r in recs if r.get("route") == "/auth/login"), len(hashes)))

    if args.locust_rc:
        print("Locust reported failed requests (exit status %d): see locust_failures.csv"
              % args.locust_rc)
    for p in problems:
        print("CHECK FAILED: %s" % p)

    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"routes": route_summary, "classes": class_summary,
                   "total_abs_diff": total_abs, "users": args.users,
                   "records": len(recs), "problems": problems,
                   "logins": {"pairs": len(pairs), "at_least_pbkdf2": good}}, f, indent=1)
        f.write("\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
