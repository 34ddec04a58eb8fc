#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Reproducer: rss_delta_bytes is sampled when the request is closed off
(close()/EOF/next request), not at the request's last response byte, so it
takes in RSS changes made by the NEXT request while this request's thread is
still busy after its response.

Run as root from the repository root:
    /usr/bin/python3 tests/upstream/repro_rss_after_response.py

Sequence (each request on its own connection, so its own app thread):
  A  GET /mem/A?mib=32&keep=1&after_ms=40   touch 32 MiB and keep it; after
                                            the response, sleep 40 ms, close
  B  GET /free/B                            sent as soon as A's response is
                                            read: munmap the 32 MiB
Expected: A +32 MiB, B -32 MiB (A's span ends at its last response byte,
before B starts). Seen (bpf/attribution.bpf.h request_finish() reads
process_rss_pages() at close, 40 ms later): A ~ 0, B -32 MiB.
"""

import http.client
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import agentprof_test as at  # noqa: E402
import test_upstream as tu  # noqa: E402


def get(port, path, rid):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"X-Request-Id": rid, "Connection": "close"})
    c.getresponse().read()
    c.close()


def main():
    with tempfile.TemporaryDirectory() as d:
        truth, reqs, prof = (os.path.join(d, n) for n in ("t.jsonl", "r.jsonl", "p.json"))
        open(truth, "w").close()
        tu.build_app()
        up, uport = tu.spawn([at.PYTHON, tu.UPSTREAM, "--port", "0"])
        app, port = tu.spawn([tu.APP, "--port", "0", "--upstream", str(uport),
                              "--truth", truth])
        ap = None
        try:
            ap = at.start_agentprof(["-p", app.pid], reqs, prof)
            get(port, "/mem/A?mib=32&keep=1&after_ms=40", "A")
            get(port, "/free/B", "B")
            time.sleep(0.1)
            tu.wait_lines(truth, 2)
            at.stop_agentprof(ap)
            ap = None
        finally:
            if ap:
                at.stop_agentprof(ap)
            for p in (app, up):
                p.terminate()
                p.wait()
        t = {x["request_id"]: x for x in at.load_jsonl(truth)}
        for r in at.load_jsonl(reqs):
            rid = r["headers"].get("x-request-id")
            m = t[rid]["mem"]
            print("%s %-40s rss_delta_bytes %11d   truth (statm in the handler) %11d   "
                  "duration_ns %d end=%s" % (rid, r["path"], r["rss_delta_bytes"],
                                             m["rss_after"] - m["rss_before"],
                                             r["duration_ns"], r.get("end")))


if __name__ == "__main__":
    main()
