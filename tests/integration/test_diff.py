#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: `agentprof diff` (issue 18).

Records three instances of tests/servers/diff_server.py side by side, each
with its own `agentprof record -o`, the requests to them interleaved (so a
change of the host's load while the test runs weighs on all three alike):
two unchanged (A, B), one with two known changes (C: /items/:id 20 ms
slower, one more query on /users/:id). Then:

  - diff A B: exit 0, no route flagged worse or better;
  - diff A C: exit 1, exactly /items/:id and /users/:id flagged worse,
    /items/:id on latency by the 20 ms the server slept more (its own
    clock, within 3 ms), /users/:id on round trips per request, 2 -> 3 as
    the server counted them; /search and /health not flagged;
  - the flagged rows sort first, the slower route (the larger impact) on top;
  - --threshold 1000: the same changes are no longer flagged, exit 0;
  - --format json carries the same verdicts; --html opens in headless
    Chromium without console errors and shows the rows and their verdicts;
  - a missing profile, or a bad option, exits 2 with a message.

Needs root (record).
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

PORTS = {"a": 19220, "b": 19221, "c": 19222}
SLOW_MS = 20
CHANGED = {"/items/:id", "/users/:id"}


def diff(*args):
    r = subprocess.run([at.AGENTPROF, "diff"] + list(args), capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def rows_json(a, b, *extra):
    rc, out, err = diff(a, b, "--format", "json", *extra)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, err + out


def flagged(doc):
    return {r["route"]: r["verdict"] for r in doc["rows"] if r["verdict"] in ("worse", "better")}


def metric(doc, route, key):
    row = next(r for r in doc["rows"] if r["route"] == route)
    return next(m for m in row["metrics"] if m["key"] == key)


def mean_by_route(truth, field):
    acc = {}
    for t in truth:
        acc.setdefault(t["route"], []).append(t[field])
    return {k: sum(v) / len(v) for k, v in acc.items()}


def main():
    tmp = tempfile.mkdtemp(prefix="agentprof-diff-")
    try:
        with pgtest.running():
            pgtest.setup_db()
            runs = diffsrv.side_by_side(tmp, [("a", PORTS["a"], 0, False),
                                              ("b", PORTS["b"], 0, False),
                                              ("c", PORTS["c"], SLOW_MS, True)])
        (pa, ta, _, _), (pb, _, _, _), (pc, tc, _, _) = runs["a"], runs["b"], runs["c"]

        rc, out, err = diff(pa, pb)
        print(out)
        at.check("unchanged: exit 0", rc == 0, "rc %s: %s" % (rc, err))
        rc, doc, err = rows_json(pa, pb)
        at.check("unchanged: no route flagged", doc is not None and not flagged(doc),
                 doc and flagged(doc))

        rc, out, err = diff(pa, pc)
        print(out)
        at.check("changed: exit 1 (a regression)", rc == 1, "rc %s: %s" % (rc, err))
        rc, doc, err = rows_json(pa, pc)
        if not at.check("changed: json parses", doc is not None, err):
            at.report()
        got = flagged(doc)
        at.check("changed: exactly the two changed routes flagged worse",
                 got == {r: "worse" for r in CHANGED}, got)
        order = [r["route"] for r in doc["rows"]]
        at.check("flagged rows first, the slower route on top",
                 order[0] == "/items/:id" and set(order[:2]) == CHANGED, order)

        wall_a, wall_c = mean_by_route(ta, "wall_ns"), mean_by_route(tc, "wall_ns")
        truth_slower = wall_c["/items"] - wall_a["/items"]
        lat = metric(doc, "/items/:id", "lat_p50")
        at.check("/items/:id latency p50 flagged worse", lat["verdict"] == "worse", lat)
        at.check("/items/:id slower by the server's own %.1f ms (agentprof %.1f ms)" % (
            truth_slower / 1e6, lat["change"] / 1e6),
            abs(lat["change"] - truth_slower) < 3e6 and abs(truth_slower - SLOW_MS * 1e6) < 3e6,
            lat)
        rt = metric(doc, "/users/:id", "pg_round_trips")
        rt_a, rt_c = mean_by_route(ta, "round_trips"), mean_by_route(tc, "round_trips")
        at.check("/users/:id round trips %.1f -> %.1f flagged worse (server: %.1f -> %.1f)" % (
            rt["before"]["value"], rt["after"]["value"], rt_a["/users"], rt_c["/users"]),
            rt["verdict"] == "worse" and rt["before"]["value"] == rt_a["/users"] == 2
            and rt["after"]["value"] == rt_c["/users"] == 3, rt)
        for route in ("/search", "/health"):
            row = next(r for r in doc["rows"] if r["route"] == route)
            at.check("%s not flagged" % route, row["verdict"] not in ("worse", "better"), row)

        rc, doc, err = rows_json(pa, pc, "--threshold", "1000")
        at.check("--threshold 1000: nothing flagged, exit 0",
                 rc == 0 and doc is not None and not flagged(doc), "rc %s %s" % (
                     rc, doc and flagged(doc)))

        html = os.path.join(tmp, "diff.html")
        rc, _, err = diff(pa, pc, "--html", html)
        at.check("--html written, exit 1 still", rc == 1 and os.path.exists(html), err)
        try:
            b = browser.Browser(width=1366, height=768)
        except (RuntimeError, OSError) as e:
            at.check("the diff page opens in headless Chromium", False, e)
            at.report()
        with b:
            b.open("file://" + html)
            page = b.eval("""({
              rows: Object.fromEntries([...document.querySelectorAll('tr.row')].map(
                  r => [r.dataset.route, r.dataset.verdict])),
              cis: document.querySelectorAll('svg.ci line').length,
              scroll: [document.documentElement.scrollWidth, innerWidth]})""")
            errors = list(b.errors)
        at.check("diff page: no console errors", not errors, errors)
        at.check("diff page: rows and verdicts",
                 page["rows"].get("/items/:id") == "worse"
                 and page["rows"].get("/users/:id") == "worse"
                 and page["rows"].get("/health") in ("same", "small"), page["rows"])
        at.check("diff page: intervals drawn, no sideways scrolling",
                 page["cis"] > 0 and page["scroll"][0] <= page["scroll"][1], page)

        rc, _, err = diff(pa, os.path.join(tmp, "missing.json"))
        at.check("missing profile: exit 2 and why", rc == 2 and "cannot read" in err, err)
        rc, _, err = diff(pa, pc, "--threshold", "ten")
        at.check("bad --threshold: exit 2 (not 1, a regression) and why",
                 rc == 2 and "invalid --threshold" in err, "rc %s: %s" % (rc, err))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    at.report()


if __name__ == "__main__":
    main()
