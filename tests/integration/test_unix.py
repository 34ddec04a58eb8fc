#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: HTTP over a unix socket (tests/servers/unix_server.py, one
request per connection, closed by the server after its response).

A unix socket's close() makes no TCP state change: with socket tracepoints,
agentprof attaches the close syscall tracepoint once it finds such a
connection, and not before (checked with `bpftool perf`). Every request is
recorded once, closed off by its close() (end "conn_closed"), and its
record is written while tracing, within 1 s of the response; cpu_ns within
10% or 2 ms of the handler's own thread CPU clock; status and route.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import agentprof_test as at

SERVER = os.path.join(at.ROOT, "tests", "servers", "unix_server.py")
COSTS = [5, 20, 10]


def get(path, i, rid, ms):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(("GET /work/%d?ms=%d HTTP/1.0\r\nHost: local\r\nX-Request-Id: %s\r\n\r\n"
               % (i, ms, rid)).encode())
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    return data.split(b" ", 2)[1].decode() if data else None


def main():
    if os.geteuid() != 0:
        at.check("running as root", False, "run as root")
        at.report()
    tmp = tempfile.mkdtemp(prefix="agentprof-unix-")
    sock = os.path.join(tmp, "http.sock")
    truth_path = os.path.join(tmp, "truth.jsonl")
    reqs = os.path.join(tmp, "requests.jsonl")
    prof = os.path.join(tmp, "profile.json")
    srv = subprocess.Popen([at.PYTHON, SERVER, "--path", sock, "--truth", truth_path],
                              stdout=subprocess.PIPE, text=True)
    ap = None
    try:
        srv.stdout.readline()
        ap = at.start_agentprof(["-p", srv.pid], reqs, prof)
        before = at.syscall_tracepoints(ap.pid)
        # The first connection makes agentprof attach close() (socket mode,
        # within its 100 ms poll): requests before that may be closed off late.
        get(sock, 0, "warm-up", 5)
        deadline = time.time() + 2.0
        while "sys_enter_close" not in at.syscall_tracepoints(ap.pid) \
                and time.time() < deadline:
            time.sleep(0.05)
        sent = {}
        for i in range(6):
            rid = "u-%d" % i
            sent[rid] = get(sock, i, rid, COSTS[i % len(COSTS)])
        # The last request's record, on a connection closed and not reused.
        live = at.records_while_tracing(reqs, len(sent), ids=sent)
        after = at.syscall_tracepoints(ap.pid)
        rc, out, err = at.stop_agentprof(ap)
        ap = None
    finally:
        if ap:
            at.stop_agentprof(ap)
        srv.terminate()
        srv.wait()
    truth = at.load_jsonl(truth_path)
    recs = at.load_jsonl(reqs)
    shutil.rmtree(tmp, ignore_errors=True)
    at.check("agentprof exits 0", rc == 0, err[-400:])
    at.check("the server answered every request", all(s == "200" for s in sent.values()), sent)
    if at.socket_mode():
        at.check("socket mode: no syscall tracepoint before a connection that is not TCP",
                 before == [], before)
        at.check("socket mode: close() traced once one is found",
                 after == ["sys_enter_close"], after)
        at.check("socket mode: stderr says close() is now traced",
                 "not TCP" in err, err[-400:])
    else:
        at.check("syscall mode: close() traced from the start",
                 "sys_enter_close" in before, before)
    at.check("every record written while tracing, within 1 s of the last response",
             live == len(sent), "%d of %d" % (live, len(sent)))
    truth = [t for t in truth if t["request_id"] in sent]
    pairs = at.match(recs, truth)
    at.check("every request recorded exactly once",
             len(pairs) == len(sent) and len(recs) == len(sent) + 1 and not at.duplicates(recs),
             "%d matched, %d records, %d sent and a warm-up" % (len(pairs), len(recs), len(sent)))
    bad = [(t["request_id"], r.get("end"), r.get("status"), r.get("route"), r.get("cpu_ns"),
            t["cpu_ns"]) for r, t in pairs
           if r.get("end") != "conn_closed" or r.get("status") != 200
           or r.get("route") != "/work/:id" or not at.near(r["cpu_ns"], t["cpu_ns"], 0.10,
                                                            2_000_000)]
    at.check("per request: closed off by close(), status, route, cpu_ns within 10% or 2 ms",
             not bad, bad)
    at.report()


if __name__ == "__main__":
    main()
