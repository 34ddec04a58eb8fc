#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""offcpu split by what a request's thread blocked for: a lock (futex), the
disk (fsync), and a plain sleep (other), against the waits the server
measured itself; and no offcpu for a keep-alive thread waiting for its
connection's next request."""

import http.client
import os
import subprocess
import tempfile
import threading
import time

import agentprof_test as at

SERVER = os.path.join(at.ROOT, "tests", "servers", "waits_server.py")


def get(port, path, rid):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"X-Request-Id": rid})
    r = c.getresponse()
    r.read()
    c.close()
    return int(r.getheader("X-Wait-Ns") or 0)


def keepalive_pause(port, pause):
    """Two requests over one keep-alive connection, pause seconds apart."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i, rid in enumerate(("ka1", "ka2")):
        if i:
            time.sleep(pause)
        c.request("GET", "/hold/%d?ms=1" % (4 + i), headers={"X-Request-Id": rid})
        r = c.getresponse()
        r.read()
    c.close()


def main():
    with tempfile.TemporaryDirectory(prefix="agentprof-waits-") as tmp:
        srv = subprocess.Popen([at.PYTHON, SERVER, "--port", "0", "--dir", tmp],
                               stdout=subprocess.PIPE, text=True)
        port = int(srv.stdout.readline().split()[1])
        reqs = os.path.join(tmp, "r.jsonl")
        ap = at.start_agentprof(["-p", str(srv.pid)], reqs, os.path.join(tmp, "p.json"))
        try:
            holder = threading.Thread(target=get, args=(port, "/hold/1?ms=300", "hold"))
            holder.start()
            time.sleep(0.1)
            lock_wait = get(port, "/lock/2", "lock")
            holder.join()
            disk_wait = get(port, "/disk/3?mib=16", "disk")
            keepalive_pause(port, 0.3)
        finally:
            rc, out, err = at.stop_agentprof(ap)
            srv.terminate()
            srv.wait()
        recs = {(r["headers"] or {}).get("x-request-id"): r for r in at.load_jsonl(reqs)}
        at.check("agentprof exits 0", rc == 0, err[-300:])
        at.check("three requests recorded", {"hold", "lock", "disk"} <= set(recs), list(recs))
        if not {"hold", "lock", "disk"} <= set(recs):
            at.report()
        hold, lock, disk = recs["hold"]["offcpu"], recs["lock"]["offcpu"], recs["disk"]["offcpu"]
        at.check("lock wait is lock_ns (within 10% or 5 ms of the server's)",
                 at.near(lock["lock_ns"], lock_wait, 0.10, 5_000_000),
                 "lock_ns %d, server %d" % (lock["lock_ns"], lock_wait))
        at.check("a sleep is other_ns, not lock or disk",
                 at.near(hold["other_ns"], 300_000_000, 0.10, 5_000_000)
                 and hold["lock_ns"] < 5_000_000 and hold["disk_ns"] < 5_000_000,
                 dict(hold, duration_ns=recs["hold"]["duration_ns"],
                      cpu_ns=recs["hold"]["cpu_ns"], runq_ns=recs["hold"]["runq_ns"],
                      threads=recs["hold"]["threads"], end=recs["hold"].get("end")))
        at.check("fsync is disk_ns, at most the server's fsync time",
                 0 < disk["disk_ns"] <= disk_wait + 2_000_000,
                 "disk_ns %d, server fsync %d" % (disk["disk_ns"], disk_wait))
        # The handler thread blocks reading the connection for the next
        # request: that wait is no request's, though ka1 stays open until
        # ka2's head arrives.
        ka = recs.get("ka1")
        at.check("keep-alive: the 300 ms wait for the next request is not ka1's offcpu",
                 ka is not None and "ka2" in recs and ka["offcpu_ns"] < 50_000_000,
                 ka and ka["offcpu"])
        at.check("the split adds up to offcpu_ns",
                 all(sum(r["offcpu"].values()) == r["offcpu_ns"] for r in recs.values()),
                 [(r["offcpu"], r["offcpu_ns"]) for r in recs.values()])
    at.report()


if __name__ == "__main__":
    main()
