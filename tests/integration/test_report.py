#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: `agentprof report` (issue 18).

Records tests/servers/diff_server.py (four routes, PostgreSQL) with
`agentprof record -o`, writes the report as an unprivileged user (it must
need neither root nor BPF), opens it in headless Chromium at a laptop's
1366x768 and checks:

  - no console error, exception or failed load; no sideways scrolling;
  - every section is there (routes, where the time goes, details,
    statements, peers, losses), each route's two plots drew their bars,
    each route's stacked bar has its segments;
  - the numbers in the page are the profile's (requests, latency and CPU
    quantiles, statements, peers, losses), and the profile's request
    counts are the server's own (its truth file);
  - a file that is not a profile is refused with a message and exit 1;
  - record's own tables of the same run fit 120 columns.

A full-page screenshot goes to build/tests/report.png. Needs root (record).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import agentprof_test as at
import browser
import diffsrv

sys.path.insert(0, os.path.join(at.ROOT, "tests", "pg"))
import pgtest  # noqa: E402

PORT = 19210
SHOT = os.path.join(at.BUILD, "tests", "report.png")
SECTIONS = ["routes", "where", "details", "statements", "peers", "losses"]


def as_nobody(cmd, cwd):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd,
                          capture_output=True, text=True, cwd=cwd)


def gkey(g):
    return "|".join([g["service"], g["method"], g["route"], g["class"]])


PAGE_DATA = r"""
(() => {
  const cells = (root) => Object.fromEntries([...root.querySelectorAll('[data-k]')].map(
      e => [e.dataset.k, {v: e.dataset.v, text: e.textContent}]));
  const rows = (sel) => [...document.querySelectorAll(sel + ' tbody tr')].map(cells);
  return {
    sections: [...document.querySelectorAll('h2[id]')].map(e => e.id),
    scroll: [document.documentElement.scrollWidth, window.innerWidth],
    routes: Object.fromEntries([...document.querySelectorAll('#routes-table tbody tr')].map(
        r => [r.dataset.group, cells(r)])),
    where: Object.fromEntries([...document.querySelectorAll('#where-table tbody tr')].map(
        r => [r.dataset.group, {segments: r.querySelectorAll('svg.bar rect').length,
                                width: r.querySelector('svg.bar').getBoundingClientRect().width,
                                titles: [...r.querySelectorAll('svg.bar title')].map(
                                    t => t.textContent)}])),
    groups: Object.fromEntries([...document.querySelectorAll('section.group')].map(
        s => [s.dataset.group, {plots: [...s.querySelectorAll('svg.plot')].map(
            p => ({bins: p.querySelectorAll('rect.bin').length,
                   marks: p.querySelectorAll('text.mark').length,
                   width: p.getBoundingClientRect().width})), kv: cells(s)}])),
    statements: rows('#statements-table'),
    peers: rows('#peers-table'),
    losses: rows('#losses-table'),
  };
})()
"""


def ms_text(ns):
    return "%.2f" % (ns / 1e6)


def check_numbers(page, prof, truth):
    by_route = {}
    for t in truth:
        if not (t["request_id"] or "").endswith("-warm"):  # sent before tracing started
            by_route[t["route"]] = by_route.get(t["route"], 0) + 1
    for g in prof["groups"]:
        k = gkey(g)
        row = page["routes"].get(k)
        if not at.check("routes table has %s" % k, row is not None, sorted(page["routes"])):
            continue
        m = g["metrics"]
        want = {"requests": g["requests"], "lat_p50": m["duration_ns"]["p50"],
                "lat_p95": m["duration_ns"]["p95"], "lat_p99": m["duration_ns"]["p99"],
                "cpu_p50": m["cpu_ns"]["p50"], "cpu_p95": m["cpu_ns"]["p95"]}
        for key, v in want.items():
            text = str(v) if key == "requests" else ms_text(v)
            at.check("%s %s = profile's" % (g["route"], key),
                     row[key]["v"] == str(v) and row[key]["text"] == text,
                     "page %r, profile %s (%s)" % (row[key], v, text))
        base = "/" + g["route"].split("/")[1]
        at.check("%s: profile's count is the server's" % g["route"],
                 g["requests"] == by_route.get(base), "%s vs %s" % (g["requests"], by_route))
        grp = page["groups"].get(k)
        if at.check("%s has a detail section" % k, grp is not None):
            plots = grp["plots"]
            at.check("%s: two plots drawn" % g["route"],
                     len(plots) == 2 and all(p["bins"] > 0 and p["marks"] == 3
                                             and p["width"] > 200 for p in plots), plots)
            at.check("%s: detail p95 is the profile's" % g["route"],
                     grp["kv"]["lat_p95"]["text"] == ms_text(m["duration_ns"]["p95"]) + " ms",
                     grp["kv"]["lat_p95"])
        bar = page["where"].get(k)
        if at.check("%s has a stacked bar" % k, bar is not None):
            at.check("%s: bar segments drawn" % g["route"],
                     bar["segments"] >= 2 and bar["width"] > 100, bar)
            # The PostgreSQL segment is the mean time in round trips, in ms.
            pg_ms = m["pg_time_ns"]["sum"] / max(1, m["pg_time_ns"]["count"]) / 1e6
            seg = [t for t in bar["titles"] if t.startswith("PostgreSQL:")]
            if pg_ms > 0.005:
                at.check("%s: PostgreSQL segment %.2f ms" % (g["route"], pg_ms),
                         seg == ["PostgreSQL: %.2f ms" % pg_ms], bar["titles"])


def check_tables(page, prof):
    stmts = prof.get("statements", [])
    at.check("statements listed", len(page["statements"]) == min(20, len(stmts)) > 0,
             "%d rows, %d statements" % (len(page["statements"]), len(stmts)))
    for row, s in zip(page["statements"], stmts):
        at.check("statement calls and total time are the profile's",
                 row["calls"]["v"] == str(s["calls"]) and row["total"]["v"] == str(s["total_ns"]),
                 "%r vs %s" % (row, s))
    peers = prof.get("peers", [])
    at.check("peers listed (PostgreSQL among them)",
             len(page["peers"]) == len(peers) and any(p["kind"] == "pg" for p in peers),
             page["peers"])
    for row, p in zip(page["peers"], peers):
        at.check("peer %s calls and wait p95 are the profile's" % p["peer"],
                 row["calls"]["v"] == str(p["calls"])
                 and row["wait_p95"]["v"] == str(p["wait_ns"]["p95"]), row)
    losses = {list(r)[0]: r[list(r)[0]]["v"] for r in page["losses"]}
    for key in ("ringbuf_drops", "malformed_heads", "incomplete", "flushed"):
        at.check("loss %s is the profile's" % key, losses.get(key) == str(prof["run"][key]),
                 losses)


def check_table(out):
    """record's tables within 120 columns, every route of the service in the first."""
    at.check("record's tables (routes, peers, statements) within 120 columns",
             out and max(map(len, out.splitlines())) <= 120, out)
    lines = out.split("\n\n")[0].splitlines()
    rows = {l.split()[2] for l in lines[1:] if l.startswith("python3")}
    at.check("record's table lists every route", rows == set(diffsrv.ROUTES), rows)


def main():
    tmp = tempfile.mkdtemp(prefix="agentprof-report-")
    os.chmod(tmp, 0o777)
    try:
        with pgtest.running():
            pgtest.setup_db()
            prof_path, truth, table, _ = diffsrv.record(tmp, "report", PORT)
        check_table(table)
        os.chmod(prof_path, 0o644)
        # A copy the unprivileged user can reach, wherever the tree is (/root is 0700).
        binary = os.path.join(tmp, "agentprof")
        shutil.copy(at.AGENTPROF, binary)
        os.chmod(binary, 0o755)
        r = as_nobody([binary, "report", prof_path], tmp)
        html = prof_path[:-len(".json")] + ".html"
        at.check("report as an unprivileged user: exit 0, path printed",
                 r.returncode == 0 and r.stdout.strip() == html, "%s %r %r" % (
                     r.returncode, r.stdout, r.stderr))
        with open(prof_path) as f:
            prof = json.load(f)
        with open(html, encoding="utf-8") as f:
            text = f.read()
        at.check("self-contained: no script, no remote reference",
                 "<script" not in text and "http://" not in text and "https://" not in text
                 and "src=" not in text, "")
        try:
            with browser.Browser(width=1366, height=768) as b:
                b.open("file://" + html)
                page = b.eval(PAGE_DATA)
                os.makedirs(os.path.dirname(SHOT), exist_ok=True)
                png = b.screenshot(SHOT, full_page=True)
                errors = list(b.errors)
        except (RuntimeError, OSError) as e:
            at.check("the page opens in headless Chromium", False, e)
            at.report()
        at.check("no console errors", not errors, errors)
        at.check("every section rendered", page["sections"] == SECTIONS, page["sections"])
        at.check("no sideways scrolling at 1366 px", page["scroll"][0] <= page["scroll"][1],
                 page["scroll"])
        size = browser.png_size(png)
        at.check("screenshot taken (%s)" % SHOT, size and size[0] >= 1300 and size[1] > 768,
                 size)
        check_numbers(page, prof, truth)
        check_tables(page, prof)

        bad = os.path.join(tmp, "not-a-profile.json")
        with open(bad, "w") as f:
            f.write('{"format": "something-else"}')
        r = subprocess.run([at.AGENTPROF, "report", bad], capture_output=True, text=True)
        at.check("a file that is not a profile: exit 1 and why",
                 r.returncode == 1 and "not an agentprof profile" in r.stderr, r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    at.report()


if __name__ == "__main__":
    main()
