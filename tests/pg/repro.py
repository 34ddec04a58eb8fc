#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Minimal reproducers for the PostgreSQL findings of test_pg.py (root).

  repro.py asyncpg-parse  asyncpg prepares with Parse+Describe+Flush (no Sync)
                          in one write, then Bind+Execute+Sync in the next:
                          the statement is reported "(prepared before
                          tracing: __asyncpg_stmt_2__)" though it was
                          prepared while traced
  repro.py asyncpg-rows   asyncpg reads a 20000-row result in big reads (more
                          than PG_MAX_MSGS messages each): pg.rows < 20000
  repro.py pipeline       libpq pipeline: 3 Syncs in flight, one write each:
                          round trips 2 and 3 are "(pipelined, not captured)"

Each starts the test server, traces it with build/agentprof record -p, sends
two requests one at a time, and prints the server's truth next to agentprof's
pg object.
"""

import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import agentprof_test as at  # noqa: E402
import pgtest  # noqa: E402
import selftest  # noqa: E402

CASES = {
    "asyncpg-parse": ("asyncpg", ["/apg/1?n=1", "/apg/2?n=1"]),
    "asyncpg-rows": ("asyncpg", ["/amany/1", "/amany/2"]),
    "pipeline": ("pipeline", ["/pipe/1?n=3", "/prep/2"]),
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit("usage: repro.py %s" % "|".join(CASES))
    kind, paths = CASES[sys.argv[1]]
    pgtest.setup_db()
    with tempfile.TemporaryDirectory() as tmp:
        truth, reqs, prof = (os.path.join(tmp, n) for n in ("t.jsonl", "r.jsonl", "p.json"))
        srv, port = selftest.start(kind, truth)
        try:
            ap = at.start_agentprof(["-p", srv.pid, "-q"], reqs, prof)
            import http.client
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i, p in enumerate(paths):
                pgtest.get(c, p, "repro-%d" % i)
            c.close()
            time.sleep(0.3)
            rc, _, err = at.stop_agentprof(ap)
        finally:
            at.stop_server(srv)
        recs = {at.record_request_id(r): r for r in at.load_jsonl(reqs)}
        print("agentprof rc %s" % rc)
        for t in at.load_jsonl(truth):
            r = recs.get(t["request_id"], {})
            print("%s\n  truth:     %s" % (t["path"], json.dumps(
                {k: t[k] for k in ("round_trips", "rows", "errors", "statements")})))
            print("  agentprof: %s" % json.dumps(r.get("pg")))


if __name__ == "__main__":
    main()
