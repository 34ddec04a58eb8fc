#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: memory and upstream socket accounting per request (issue 4).

A thread-per-connection C app server (tests/upstream/app_server.c) touches new
memory and calls delay servers (tests/upstream/upstream_server.py) standing in
for upstreams; it measures every number about itself (getrusage faults, mapped
bytes, RSS, connect/ttfb/wait of each call, bytes) and writes them as truth
lines. `agentprof record -p APP` must report the same per request.

Peers: upstream A is named with --peer-name 127.0.0.1:A=llm, upstream B keeps
its address as its name; a closed local port stands in for a dead service.

Bounds:
  memory: (minor+major) faults x 4096 >= 90% of the MiB touched (the server
    madvises MADV_NOHUGEPAGE: one fault per 4 KiB page), and within 1% or 16
    faults of the server's own getrusage(RUSAGE_THREAD) count for the request;
    mapped_bytes between the bytes mmapped and 1 MiB more; rss_delta_bytes
    within 10% of 0 for memory unmapped before the response, of +N MiB for
    memory kept past the request and of -N MiB for the request freeing it,
    also when the previous request's thread still works (after_ms=40) after
    its response while the next request runs: RSS changes belong to the
    request whose span (first byte read .. last byte written) holds them.
  upstream: wait_ns and ttfb_ns within 10% or 3 ms of the server's own clock
    (around its syscalls), calls == 1, exact tx/rx bytes, connect_ns > 0 only
    for the request that opened the connection; also for a call whose
    connection the app half-closes (shutdown(SHUT_WR)) and reads only after
    the upstream's reply and FIN have ended the socket (TCP_CLOSE).
  offcpu.upstream_ns: the thread blocks in read() for the whole wait, so
    > 0, <= offcpu_ns, and with runq_ns + cpu_ns (time runnable or running,
    non-zero on a loaded host) >= 90% of the truth wait minus 3 ms.

Usage: test_upstream.py            (root; needs build/agentprof)
       test_upstream.py --servers  (no agentprof: self-test of the servers)
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import agentprof_test as at
import drive

HOST = "127.0.0.1"
PAGE = 4096
MIB = 1 << 20
APP_SRC = os.path.join(at.ROOT, "tests", "upstream", "app_server.c")
APP = os.path.join(at.BUILD, "tests", "app_server")
UPSTREAM = os.path.join(at.ROOT, "tests", "upstream", "upstream_server.py")
PREFIX = "up%d" % os.getpid()


def build_app():
    at.build_c_server(APP_SRC, APP)


def spawn(cmd, timeout=10):
    """Starts a server that prints "listening PORT"; returns (Popen, port)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=at.ROOT)
    p._out = at._Lines(p.stdout)
    line = p._out.wait_for(lambda l: l.startswith("listening "), timeout)
    if line is None:
        p.kill()
        p.wait()
        raise RuntimeError("%s did not start: %r" % (cmd, p._out.text(1)))
    return p, int(line.split()[1])


def closed_port():
    """A local port nothing listens on (bound then closed, never listened)."""
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_lines(path, n, timeout=5):
    """The server writes a truth line after the response: wait until all are there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(at.load_jsonl(path)) < n:
        time.sleep(0.02)


# ---- workload ----

class Workload:
    def __init__(self, port, port_a, port_b, port_closed):
        self.port, self.a, self.b, self.closed = port, port_a, port_b, port_closed
        self.sent = []
        self.tags = {}  # request_id -> dict(tag=..., plus expectations)

    def one(self, conn, path_fmt, tag, **info):
        rid = drive.next_id(PREFIX)
        path = path_fmt % {"id": drive._path_id(rid)}
        close = conn is None
        c = conn or http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            rec = drive.request(c, "GET", path, rid, "simple", close=close)
        finally:
            if close:
                c.close()
        self.sent.append(rec)
        self.tags[rid] = dict(info, tag=tag)
        return rec

    def run(self):
        # memory: one keep-alive connection, one thread
        ka = http.client.HTTPConnection(HOST, self.port, timeout=30)
        for mib in (16, 32, 64):
            self.one(ka, "/mem/%%(id)s?mib=%d" % mib, "mem", mib=mib)
        ka.close()
        time.sleep(0.05)  # the app thread sees EOF before the next request
        # memory kept past the request, freed by a later one (new connections),
        # with a pause between the requests
        self.one(None, "/mem/%(id)s?mib=32&keep=1", "mem_keep", mib=32, overlap=False)
        time.sleep(0.05)
        self.one(None, "/free/%(id)s", "free", mib=32, overlap=False)
        time.sleep(0.05)
        # back to back, where a thread works 40 ms after its response (post-
        # response work: logging, cleanup) while the next request runs: the
        # RSS change belongs to the request whose span (first byte read .. last
        # byte written) holds it, not to the one whose thread is still busy
        self.one(None, "/mem/%(id)s?mib=32&keep=1&after_ms=40", "mem_keep", mib=32,
                 overlap=True)
        self.one(None, "/free/%(id)s", "free", mib=32, overlap=True)
        time.sleep(0.1)
        self.one(None, "/mem/%(id)s?mib=32&keep=1", "mem_keep", mib=32, overlap=True)
        time.sleep(0.05)
        self.one(None, "/free/%(id)s?after_ms=40", "free", mib=32, overlap=True)
        self.one(None, "/mem/%(id)s?mib=16&keep=1", "mem_keep", mib=16, overlap=True)
        time.sleep(0.1)
        self.one(None, "/free/%(id)s", "free", mib=16, overlap=True)
        time.sleep(0.05)
        # informational: the same with transparent huge pages
        self.one(None, "/mem/%(id)s?mib=64&thp=1", "mem_thp", mib=64)
        # one call per request on a new upstream connection each
        for ms in (30, 60):
            self.one(None, "/call/%%(id)s?ms=%d" % ms, "call", ms=ms, peer="llm", stream=False)
            self.one(None, "/call/%%(id)s?ms=%d&stream=1&chunks=4" % ms, "call",
                     ms=ms, peer="llm", stream=True)
        self.one(None, "/call/%%(id)s?ms=30&port=%d" % self.b, "call", ms=30,
                 peer="%s:%d" % (HOST, self.b), stream=False)
        self.one(None, "/call/%%(id)s?ms=60&stream=1&chunks=6&port=%d" % self.b, "call",
                 ms=60, peer="%s:%d" % (HOST, self.b), stream=True)
        # half-closed after the request: the reply and the upstream's FIN (the
        # socket's TCP_CLOSE) come while the app sleeps, then it reads the reply
        self.one(None, "/call/%(id)s?ms=20&half=60", "call", ms=20, peer="llm", stream=False,
                 half=True)
        # the pooled upstream connection: consecutive requests on one client
        # connection (same app thread), then on new client connections (a new
        # app thread each); alternate delays so a leak would show as a sum
        ka = http.client.HTTPConnection(HOST, self.port, timeout=30)
        for i, ms in enumerate((60, 30, 60, 30)):
            self.one(ka, "/pooled/%%(id)s?ms=%d" % ms, "pooled", ms=ms, peer="llm",
                     seq=i, client="keepalive")
        ka.close()
        for i, ms in enumerate((30, 60, 30)):
            self.one(None, "/pooled/%%(id)s?ms=%d" % ms, "pooled", ms=ms, peer="llm",
                     seq=4 + i, client="new")
        # a peer that resets, a port nobody listens on
        self.one(None, "/reset/%(id)s", "reset", peer="llm")
        self.one(None, "/closed/%%(id)s?port=%d" % self.closed, "closed",
                 peer="%s:%d" % (HOST, self.closed))
        # a plain call after the errors: the app and agentprof still work
        self.one(None, "/call/%(id)s?ms=30", "call", ms=30, peer="llm", stream=False,
                 after_errors=True)
        return self.sent


def run_servers(tmp, with_agentprof):
    truth_path = os.path.join(tmp, "truth.jsonl")
    reqs_path = os.path.join(tmp, "requests.jsonl")
    prof_path = os.path.join(tmp, "profile.json")
    open(truth_path, "w").close()
    build_app()
    procs = []
    ap = app = wl = None
    res = {"rc": None, "out": "", "err": ""}
    try:
        up_a, port_a = spawn([at.PYTHON, UPSTREAM, "--port", "0"])
        procs.append(up_a)
        up_b, port_b = spawn([at.PYTHON, UPSTREAM, "--port", "0"])
        procs.append(up_b)
        app, port = spawn([APP, "--port", "0", "--upstream", str(port_a),
                           "--truth", truth_path])
        procs.append(app)
        wl = Workload(port, port_a, port_b, closed_port())
        if with_agentprof:
            # --wide: the table's memory and upstream-wait columns are checked below.
            ap = at.start_agentprof(["-p", app.pid, "--mmap", "--wide", "--peer-name",
                                     "%s:%d=llm" % (HOST, port_a)], reqs_path, prof_path)
            res["sys_tps"] = at.syscall_tracepoints(ap.pid)
        wl.run()
        wait_lines(truth_path, len(wl.sent))
        if ap:
            res["rc"], res["out"], res["err"] = at.stop_agentprof(ap)
            ap = None
    finally:
        if ap:
            at.stop_agentprof(ap)
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    try:
        with open(prof_path) as f:
            prof = json.load(f)
    except (OSError, ValueError) as e:
        prof = e
    res.update(wl=wl, truth=at.load_jsonl(truth_path), recs=at.load_jsonl(reqs_path),
               prof=prof, app_pid=app.pid if app else None)
    return res


# ---- checks ----

def expect_status(tag):
    return 502 if tag in ("reset", "closed") else 200


def check_truth(wl, truth):
    """The servers' own consistency: what the test relies on."""
    sent = wl.sent
    by = {t["request_id"]: t for t in truth}
    at.check("servers: client saw no errors", not [s for s in sent if s["error"]],
             [s["error"] for s in sent if s["error"]][:3])
    at.check("servers: one truth line per request",
             len(truth) == len(sent) and all(s["request_id"] in by for s in sent),
             "%d truth lines, %d sent" % (len(truth), len(sent)))
    bad = []
    for s in sent:
        t, g = by.get(s["request_id"]), wl.tags[s["request_id"]]
        if not t:
            continue
        if s["status"] != expect_status(g["tag"]) or t["status"] != s["status"]:
            bad.append((s["request_id"], "status", s["status"], t["status"]))
        if g["tag"] in ("mem", "mem_keep"):
            m = t["mem"]
            if m["touch_minor_faults"] + m["touch_major_faults"] != g["mib"] * MIB // PAGE:
                bad.append((s["request_id"], "faults", m))
        if g["tag"] == "mem_keep" and m["rss_after"] - m["rss_before"] < 0.95 * g["mib"] * MIB:
            bad.append((s["request_id"], "rss keep", m))
        if g["tag"] == "free" and t["mem"]["rss_before"] - t["mem"]["rss_after"] < 0.95 * g["mib"] * MIB:
            bad.append((s["request_id"], "rss free", t["mem"]))
        if g["tag"] in ("call", "pooled"):
            u = t["upstream"]
            if u["error"] or u["status"] != 200:
                bad.append((s["request_id"], "upstream", u))
            # >= the delay, unless the app thread was preempted between its
            # write() and reading the clock (only on a loaded host)
            elif not (g["ms"] * 0.85e6 <= u["wait_ns"] <= g["ms"] * 1e6 + 50e6):
                bad.append((s["request_id"], "wait vs delay", u["wait_ns"], g["ms"]))
            if g.get("stream") and not (u["reads"] >= 2 and u["ttfb_ns"] < u["wait_ns"] - 5e6):
                bad.append((s["request_id"], "stream framing", u))
            if g["tag"] == "pooled" and u["new_conn"] != (g["seq"] == 0):
                bad.append((s["request_id"], "pooled connection reused", u))
        if g["tag"] == "reset" and t["upstream"]["error"] != "ECONNRESET":
            bad.append((s["request_id"], "reset", t["upstream"]))
        if g["tag"] == "closed" and t["upstream"]["error"] != "ECONNREFUSED":
            bad.append((s["request_id"], "closed", t["upstream"]))
    at.check("servers: truth as designed (faults per page, delays, framing, errors)",
             not bad, bad[:4])


def upstream_of(rec, peer):
    return [u for u in rec.get("upstream") or [] if u.get("peer") == peer]


def near(v, want, rel=0.10, abs_ns=3_000_000):
    return isinstance(v, int) and abs(v - want) <= max(rel * want, abs_ns)


def check_memory(pairs, tags):
    bad = {k: [] for k in ("fields", "faults>=90%", "faults~truth", "mapped_bytes",
                           "rss_delta transient", "upstream-free")}
    for rec, t in pairs:
        g = tags[t["request_id"]]
        if g["tag"] not in ("mem", "mem_keep", "free"):
            continue
        rid = t["request_id"]
        miss = [f for f in ("minor_faults", "major_faults", "rss_delta_bytes", "mapped_bytes")
                if not isinstance(rec.get(f), int)]
        if miss:
            bad["fields"].append((rid, miss))
            continue
        if rec.get("upstream"):
            bad["upstream-free"].append((rid, rec["upstream"]))
        if g["tag"] == "free":
            continue
        faults = rec["minor_faults"] + rec["major_faults"]
        want = g["mib"] * MIB
        if faults * PAGE < 0.9 * want:
            bad["faults>=90%"].append((rid, g["mib"], faults))
        tf = t["minor_faults"] + t["major_faults"]
        if abs(faults - tf) > max(0.01 * tf, 16):
            bad["faults~truth"].append((rid, faults, tf))
        if not want <= rec["mapped_bytes"] <= want + MIB:
            bad["mapped_bytes"].append((rid, rec["mapped_bytes"], want))
        if g["tag"] == "mem" and abs(rec["rss_delta_bytes"]) > 0.1 * want:
            bad["rss_delta transient"].append((rid, rec["rss_delta_bytes"], want))
    for k, v in bad.items():
        at.check("memory: " + k, not v, "%d bad, e.g. %s" % (len(v), v[:3]))
    for overlap, what in ((False, "pause between requests"),
                          (True, "next request runs while the previous thread works after "
                                 "its response")):
        lst = [(r, t) for r, t in pairs if tags[t["request_id"]]["tag"] in ("mem_keep", "free")
               and tags[t["request_id"]]["overlap"] == overlap]
        lst.sort(key=lambda p: p[0].get("start_ns", 0))
        got, bad = [], []
        for r, t in lst:
            g = tags[t["request_id"]]
            want = (1 if g["tag"] == "mem_keep" else -1) * g["mib"] * MIB
            v = r.get("rss_delta_bytes")
            truth_delta = t["mem"]["rss_after"] - t["mem"]["rss_before"]
            got.append(("%s %+d MiB" % (g["tag"], want // MIB), v, truth_delta))
            if not (isinstance(v, int) and abs(v - want) <= 0.1 * abs(want)):
                bad.append(t["request_id"])
        at.check("memory: keep N MiB then free it, %s: rss_delta_bytes +N MiB, -N MiB "
                 "(signed)" % what, lst and not bad,
                 "(request, rss_delta_bytes, truth statm delta): %s" % got)
    thp = [(r, t) for r, t in pairs if tags[t["request_id"]]["tag"] == "mem_thp"]
    for r, t in thp:
        print("info - THP 64 MiB: agentprof minor_faults %s mapped_bytes %s rss_delta %s; "
              "truth faults %d" % (r.get("minor_faults"), r.get("mapped_bytes"),
                                   r.get("rss_delta_bytes"), t["minor_faults"]), flush=True)


def check_calls(pairs, tags):
    bad = {k: [] for k in ("one entry for the peer, named", "kind", "calls == 1", "wait_ns",
                           "ttfb_ns", "tx/rx bytes", "connect_ns", "connects", "retransmits",
                           "offcpu.upstream_ns", "other peers")}
    for rec, t in pairs:
        g = tags[t["request_id"]]
        if g["tag"] not in ("call", "pooled"):
            continue
        rid, tu = t["request_id"], t["upstream"]
        us = upstream_of(rec, g["peer"])
        if len(us) != 1:
            bad["one entry for the peer, named"].append((rid, g["peer"], rec.get("upstream")))
            continue
        u = us[0]
        if len(rec["upstream"]) != 1:
            bad["other peers"].append((rid, rec["upstream"]))
        if u.get("kind") != "upstream":
            bad["kind"].append((rid, u.get("kind")))
        if u.get("calls") != 1:
            bad["calls == 1"].append((rid, g, u.get("calls")))
        if not near(u.get("wait_ns"), tu["wait_ns"]):
            bad["wait_ns"].append((rid, g["tag"], g["ms"], "stream" if g.get("stream") else "",
                                   u.get("wait_ns"), tu["wait_ns"]))
        if not near(u.get("ttfb_ns"), tu["ttfb_ns"]):
            bad["ttfb_ns"].append((rid, u.get("ttfb_ns"), tu["ttfb_ns"]))
        if u.get("tx_bytes") != tu["tx_bytes"] or u.get("rx_bytes") != tu["rx_bytes"]:
            bad["tx/rx bytes"].append((rid, u.get("tx_bytes"), tu["tx_bytes"],
                                       u.get("rx_bytes"), tu["rx_bytes"]))
        cn = u.get("connect_ns")
        if tu["new_conn"]:
            if not (isinstance(cn, int) and 0 < cn <= tu["connect_ns"] + 1_000_000):
                bad["connect_ns"].append((rid, "new", cn, tu["connect_ns"]))
        elif cn != 0:
            bad["connect_ns"].append((rid, "reused", cn))
        if u.get("connects") != (1 if tu["new_conn"] else 0):
            bad["connects"].append((rid, u.get("connects"), tu["new_conn"]))
        if u.get("retransmits") != 0:
            bad["retransmits"].append((rid, u.get("retransmits")))
        # during the wait the thread is blocked in read() (offcpu.upstream_ns),
        # or runnable (runq_ns, on a loaded host), or briefly on CPU
        off = rec.get("offcpu") or {}
        ou = off.get("upstream_ns")
        if not (isinstance(ou, int) and ou > 0 and ou <= rec.get("offcpu_ns", 0)
                and ou + rec.get("runq_ns", 0) + rec.get("cpu_ns", 0)
                >= 0.9 * tu["wait_ns"] - 3_000_000):
            bad["offcpu.upstream_ns"].append((rid, off, rec.get("offcpu_ns"), rec.get("runq_ns"),
                                              tu["wait_ns"]))
    for k, v in bad.items():
        at.check("upstream: " + k, not v, "%d bad, e.g. %s" % (len(v), v[:4]))
    half = [t["upstream"].get("fin_first") for _, t in pairs
            if tags[t["request_id"]].get("half")]
    at.check("upstream: premise: the half-closed call's reply and FIN came before its read",
             half == [True], half)

    pooled = sorted(((r, t) for r, t in pairs if tags[t["request_id"]]["tag"] == "pooled"),
                    key=lambda p: tags[p[1]["request_id"]]["seq"])
    waits = [(upstream_of(r, "llm") or [{}])[0].get("wait_ns") for r, _ in pooled]
    own = [t["upstream"]["wait_ns"] for _, t in pooled]
    at.check("pooled: %d consecutive requests each get their own wait (no sums)" % len(pooled),
             len(pooled) == 7 and all(near(w, o) for w, o in zip(waits, own)),
             "agentprof %s, truth %s" % (waits, own))
    firsts = [(upstream_of(r, "llm") or [{}])[0].get("connect_ns") for r, _ in pooled]
    at.check("pooled: only the request that opened the connection has connect_ns",
             len(firsts) == 7 and firsts[0] and firsts[0] > 0 and not any(firsts[1:]), firsts)


def check_errors(pairs, tags, res):
    at.check("errors: agentprof exits 0 after a reset and a refused connect",
             res["rc"] == 0, "rc %s, stderr %s" % (res["rc"], res["err"][-400:]))
    for tag in ("reset", "closed"):
        lst = [(r, t) for r, t in pairs if tags[t["request_id"]]["tag"] == tag]
        at.check("errors: the %s request is recorded with status 502" % tag,
                 len(lst) == 1 and lst[0][0].get("status") == 502
                 and not lst[0][0].get("incomplete"), lst[:1])
    r = [(r, t) for r, t in pairs if tags[t["request_id"]]["tag"] == "reset"]
    if r:
        rec, t = r[0]
        u = upstream_of(rec, "llm")
        at.check("errors: the reset request shows its bytes to llm",
                 len(u) == 1 and u[0].get("tx_bytes") == t["upstream"]["tx_bytes"]
                 and u[0].get("rx_bytes") == 0 and u[0].get("connects") == 1,
                 rec.get("upstream"))
        print("info - reset request's upstream: %s" % rec.get("upstream"), flush=True)
    c = [(r, t) for r, t in pairs if tags[t["request_id"]]["tag"] == "closed"]
    if c:
        print("info - closed-port request's upstream: %s" % c[0][0].get("upstream"), flush=True)


def check_profile(pairs, tags, res, port_b, port_closed):
    prof = res["prof"]
    if not at.check("profile: readable", isinstance(prof, dict), prof):
        return
    peers = {p.get("peer"): p for p in prof.get("peers") or []}
    print("info - profile peers: %s" % json.dumps(prof.get("peers")), flush=True)
    b = "%s:%d" % (HOST, port_b)
    closed = "%s:%d" % (HOST, port_closed)
    at.check("profile: peers llm and %s (named by --peer-name, else ADDR:PORT)" % b,
             "llm" in peers and b in peers and not any(str(port_b) in k and k != b
                                                         for k in peers),
             sorted(peers))
    # calls and requests per peer, from the records
    for name in ("llm", b):
        p = peers.get(name, {})
        want = [(r, t) for r, t in pairs if tags[t["request_id"]].get("peer") == name
                and tags[t["request_id"]]["tag"] in ("call", "pooled")]
        errs = [(r, t) for r, t in pairs if tags[t["request_id"]].get("peer") == name
                and tags[t["request_id"]]["tag"] == "reset"]
        n = len(want)
        at.check("profile: %s calls and requests" % name,
                 n <= (p.get("calls") or 0) <= n + len(errs)
                 and n <= (p.get("requests") or 0) <= n + len(errs) and p.get("kind") == "upstream",
                 "profile %s, %d successful calls + %d reset" % (
                     {k: p.get(k) for k in ("kind", "calls", "requests")}, n, len(errs)))
        w = p.get("wait_ns") or {}
        tw = sorted(t["upstream"]["wait_ns"] for _, t in want)
        at.check("profile: %s wait_ns percentiles within the truth's range" % name,
                 tw and all(k in w for k in ("p50", "p95", "p99"))
                 and 0.9 * tw[0] - 3e6 <= w["p50"] <= w["p95"] <= w["p99"] <= 1.1 * tw[-1] + 3e6,
                 "profile %s, truth %s" % (w, tw))
        at.check("profile: %s TCP srtt and no retransmits on loopback" % name,
                 isinstance(p.get("srtt_avg_us"), (int, float)) and p.get("srtt_max_us", 0) > 0
                 and p.get("srtt_avg_us") <= p.get("srtt_max_us") and p.get("retransmits") == 0,
                 {k: p.get(k) for k in ("srtt_avg_us", "srtt_max_us", "retransmits")})
    llm = peers.get("llm", {})
    at.check("profile: llm counts the reset", (llm.get("resets") or 0) >= 1,
             {k: llm.get(k) for k in ("resets", "connect_failures")})
    at.check("profile: llm has no connect failures", llm.get("connect_failures") == 0,
             llm.get("connect_failures"))
    cp = peers.get(closed, {})
    at.check("profile: the closed port counts a connect failure",
             (cp.get("connect_failures") or 0) >= 1, cp or sorted(peers))
    pb = peers.get(b, {})
    at.check("profile: %s has no resets or connect failures" % b,
             pb.get("resets") == 0 and pb.get("connect_failures") == 0,
             {k: pb.get(k) for k in ("resets", "connect_failures")})
    # per-route memory and upstream metrics
    groups = {g["route"]: g for g in prof.get("groups", [])}
    mem = groups.get("/mem/:id", {}).get("metrics", {})
    call = groups.get("/call/:id", {}).get("metrics", {})
    at.check("profile: /mem/:id has fault, mapped-bytes and RSS percentiles",
             (mem.get("minor_faults") or {}).get("p99", 0) >= 16384 * 0.9
             and (mem.get("mapped_bytes") or {}).get("p99", 0) >= 0.9 * 64 * MIB
             and any(k.startswith("rss_") for k in mem),
             sorted(mem))
    up_keys = [k for k in call if "upstream" in k]
    at.check("profile: /call/:id has upstream-wait percentiles",
             any((call[k] or {}).get("p50", 0) >= 25e6 for k in up_keys), (up_keys, sorted(call)))
    out = res["out"]
    head = next((l for l in out.splitlines() if "ROUTE" in l), "")
    at.check("table: the --wide per-route table has memory and upstream-wait columns",
             re.search(r"FLT|MEM|RSS|MAP", head) and re.search(r"UPS", head), head)
    at.check("table: per-peer table lists llm, %s and the closed port" % b,
             re.search(r"^\s*llm\s", out, re.M) and b in out and closed in out, out[-1500:])


def main():
    servers_only = "--servers" in sys.argv[1:]
    if not servers_only and os.geteuid() != 0:
        at.check("running as root", False, "run as root (or --servers for the self-test)")
        at.report()
    with tempfile.TemporaryDirectory(prefix="agentprof-upstream-") as tmp:
        res = run_servers(tmp, not servers_only)
    wl, truth = res["wl"], res["truth"]
    check_truth(wl, truth)
    if servers_only:
        at.report()
    recs = res["recs"]
    pairs = at.match(recs, truth)
    at.check("every request recorded exactly once",
             len(pairs) == len(wl.sent) and not at.duplicates(recs),
             "%d matched of %d, duplicates %s, unmatched %s" % (
                 len(pairs), len(wl.sent), at.duplicates(recs)[:3],
                 [t["request_id"] for t in at.unmatched(recs, truth)][:5]))
    if at.socket_mode():
        at.check("--mmap in socket mode: the only syscall tracepoints are mmap's and brk's",
                 res.get("sys_tps") == ["sys_enter_mmap", "sys_exit_brk", "sys_exit_mmap"],
                 res.get("sys_tps"))
    check_memory(pairs, wl.tags)
    check_calls(pairs, wl.tags)
    check_errors(pairs, wl.tags, res)
    check_profile(pairs, wl.tags, res, wl.b, wl.closed)
    at.report()


if __name__ == "__main__":
    main()
