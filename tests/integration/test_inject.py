#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: faults injected while `agentprof record` traces (issue 19),
each outcome asserted against what the workload measured about itself.

  1. PostgreSQL killed mid-query and restarted: a private PostgreSQL 15
     (initdb in a temporary directory, on a port of its own; the shared
     cluster is never touched) is stopped with `pg_ctl stop -m immediate`
     while a request waits in pg_sleep(), then started again. The request's
     round trip is an error timed up to the kill; requests on a connection
     opened after the restart are recorded exactly, statements included.
  2. A traced process SIGKILLed mid-request and its pid reused: the request
     is recorded incomplete (task_exited); a new server started on the same
     pid (kernel.ns_last_pid) is not traced, none of its requests is
     recorded, and agentprof ends on its own ("every traced process has
     exited") although the pid exists again.
  3. A client that resets its connection (SO_LINGER 0) after the first of
     10 chunks of a streamed response (200 ms of CPU before each): the
     request is closed off by the reset, with the bytes the client got, and
     the CPU the server burnt for the next chunk after it is not charged;
     the next request is recorded exactly.
  4. 10,000 idle keep-alive connections (RLIMIT_NOFILE raised in the test and
     the server): a request on each, then 300 more on idle ones picked at
     random; all 10,300 recorded once, equal to the server's truth, nothing
     lost.
  5. A burst that overflows the ring buffer: agentprof stopped (SIGSTOP)
     while wrk sends ~30,000 requests, then continued: the drops are counted
     and said, and records + drops equal the requests the server answered,
     every record equal to its truth.

Only in the default mode (tests/run).

Usage: test_inject.py [NAME...]   (root; NAME: pg pid reset idle burst)
"""

import http.client
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import agentprof_test as at
import drive
import faultlib as fl

sys.path.insert(0, os.path.join(at.ROOT, "tests", "pg"))
import pgtest  # noqa: E402

HOST = "127.0.0.1"
PREFIX = "inj%d" % os.getpid()
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_SERVER = os.path.join(at.ROOT, "tests", "pg", "pg_server.py")


def rid(tag):
    return drive.next_id("%s%s" % (PREFIX, tag))


def by_rid(recs):
    out = {}
    for r in recs:
        out.setdefault(at.record_request_id(r), []).append(r)
    return out


def free_port(lo=19430, hi=19499):
    """A free TCP port of this test's range (other sessions on the host use theirs)."""
    for port in range(lo, hi + 1):
        s = socket.socket()
        try:
            s.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in %d-%d" % (lo, hi))


# 1 ---------------------------------------------------------------------------

class PrivatePG:
    """A PostgreSQL 15 cluster of this test only, run as the postgres user."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "pg")
        os.mkdir(self.dir)
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.pg("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def pg(self, tool, *args):
        cmd = ["runuser", "-u", "postgres", "--", os.path.join(PG_BIN, tool)] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=120)
        if r.returncode:
            raise RuntimeError("%s failed: %s" % (cmd, (r.stderr or r.stdout)[-500:]))
        return r.stdout

    def start(self):
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.dir)
        self.pg("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-o", opts,
                "-w", "start")

    def kill(self):
        """Every backend and the postmaster, at once (as a crash would)."""
        self.pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def psql(self, sql):
        return self.pg("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                       "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql)

    def setup(self):
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (pgtest.PG_USER, pgtest.PG_PASSWORD))
        self.psql("CREATE DATABASE %s OWNER %s" % (pgtest.PG_DB, pgtest.PG_USER))

    def wait_query(self, prefix, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%s%%'"
                         % prefix).strip() not in ("", "0"):
                return True
            time.sleep(0.05)
        return False

    def destroy(self):
        try:
            self.kill()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass


def pg_get(port, path, rid_):
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("GET", path, headers={"X-Request-Id": rid_})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException) as e:
        return repr(e)
    finally:
        conn.close()


def test_pg_restart(tmp):
    pre = "PostgreSQL killed mid-query and restarted: "
    pg = PrivatePG(tmp)
    srv = ap = None
    truth = os.path.join(tmp, "pg-truth.jsonl")
    reqs, prof = os.path.join(tmp, "pg-reqs.jsonl"), os.path.join(tmp, "pg-prof.json")
    try:
        pg.start()
        pg.setup()
        srv = fl.track(subprocess.Popen(
            [at.PYTHON, PG_SERVER, "--port", "0", "--truth", truth, "--pg-port", str(pg.port),
             "--pool", "1"], stdout=subprocess.PIPE, text=True, cwd=at.ROOT))
        srv._out = at._Lines(srv.stdout)
        line = srv._out.wait_for(lambda l: l.startswith("listening "), 20)
        if line is None:
            raise RuntimeError("pg_server did not start")
        port = int(line.split()[1])
        ap = fl.start_ap(["-q", "-p", srv.pid, "--pg-port", pg.port, "--requests", reqs,
                          "-o", prof])
        a, b, c = rid("pga"), rid("pgb"), rid("pgc")
        st_a = pg_get(port, "/psycopg/%s?n=3" % a, a)
        res = []
        th = threading.Thread(target=lambda: res.append(pg_get(port, "/sleep/%s?s=20" % b, b)))
        t0 = time.monotonic()
        th.start()
        running = pg.wait_query("SELECT pg_sleep")
        time.sleep(0.5)
        waited = time.monotonic() - t0
        pg.kill()
        th.join(30)
        pg.start()
        st_c = pg_get(port, "/fresh/%s?port=%d" % (c, pg.port), c)
        time.sleep(0.2)
        ap.send_signal(signal.SIGINT)
        rc = fl.wait_exit(ap)
        err = ap._err.text()
    finally:
        if ap and ap.poll() is None:
            ap.kill()
        if srv:
            at.stop_server(srv)
        pg.destroy()
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    recs = by_rid(at.load_jsonl(reqs))
    at.check(pre + "premises: the query ran when killed; statuses 200, 500, 200",
             running and st_a == 200 and res == [500] and st_c == 200
             and t.get(b, {}).get("died"), (running, st_a, res, st_c, t.get(b)))
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s: %r" % (rc, err[-300:]))
    rb = (recs.get(b) or [None])[0]
    at.check(pre + "the killed request is recorded", rb is not None, sorted(k for k in recs if k))
    if rb:
        pgb = rb["pg"]
        qs = pgb.get("queries") or []
        at.check(pre + "its query: one round trip, an error (the server's truth: %s)"
                 % t[b]["statements"],
                 pgb["round_trips"] == 1 and pgb["errors"] == 1 and len(qs) == 1
                 and qs[0]["error"] is True and qs[0]["fingerprint"] == "SELECT pg_sleep($1)",
                 pgb)
        at.check(pre + "timed up to the kill: %.2f s waited, < 20 s slept" % waited,
                 waited * 1e9 * 0.9 <= pgb["time_ns"] < 19e9, pgb["time_ns"])
        at.check(pre + "status 500 as the server answered", rb["status"] == t[b]["status"] == 500,
                 rb["status"])
    for name, i in (("before the kill", a), ("after the restart, a new connection", c)):
        r = (recs.get(i) or [None])[0]
        want = t.get(i)
        ok = r is not None and want is not None and r["pg"]["round_trips"] == want["round_trips"] \
            and r["pg"]["errors"] == want["errors"] == 0 and \
            [q["fingerprint"] for q in r["pg"]["queries"]] == \
            [s["fingerprint"] for s in want["statements"]]
        at.check(pre + "%s: round trips, errors and statements equal the truth" % name, ok,
                 (r and r["pg"], want and want["statements"]))
    at.check(pre + "no literal of any statement in the records",
             not any(lit in open(reqs).read() for x in t.values() for lit in x["literals"]),
             "a literal leaked")


# 2 ---------------------------------------------------------------------------

def spawn_on_pid(pid, cmd, tries=200):
    """Starts cmd as process pid (kernel.ns_last_pid; other forks on the host can
    take the pid first: tried again). Returns the Popen or None."""
    for _ in range(tries):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=at.ROOT)
        if p.pid == pid:
            return fl.track(p)
        p.kill()
        p.wait()
    return None


def test_pid_reuse(tmp):
    pre = "traced server SIGKILLed mid-request, its pid reused: "
    truth_a, truth_b = os.path.join(tmp, "reuse-a.jsonl"), os.path.join(tmp, "reuse-b.jsonl")
    reqs, prof = os.path.join(tmp, "reuse-reqs.jsonl"), os.path.join(tmp, "reuse-prof.json")
    srv, port = at.start_server("c", truth_a)
    fl.track(srv)
    pid = srv.pid
    result, b = [], None
    ap = fl.start_ap(["-q", "-p", pid, "--requests", reqs, "-o", prof])
    try:
        done = drive.keepalive(HOST, port, 2, ms=2, prefix=PREFIX + "reuse")
        kid = rid("kill")
        conn = http.client.HTTPConnection(HOST, port, timeout=20)
        th = threading.Thread(target=lambda: result.append(drive.request(
            conn, "GET", drive.cpu_path(kid, 3000), kid, "complex", conn_name="k")))
        th.start()
        time.sleep(0.4)
        srv.kill()
        srv.wait()
        # at once: agentprof checks its targets once a second
        open(truth_b, "w").close()
        b = spawn_on_pid(pid, [at.CPU_SERVER, "--port", "0", "--truth", truth_b])
        th.join(20)
        conn.close()
        sent_b = []
        if b:
            b._out = at._Lines(b.stdout)
            line = b._out.wait_for(lambda l: l.startswith("listening "), 10)
            port_b = int(line.split()[1]) if line else None
            if port_b:
                sent_b = drive.keepalive(HOST, port_b, 5, ms=1, prefix=PREFIX + "reused")
        rc = fl.wait_exit(ap, 10)
        err = ap._err.text()
    finally:
        if ap.poll() is None:
            ap.kill()
        if b:
            at.stop_server(b)
    at.check(pre + "premise: a new server started on pid %d" % pid, b is not None)
    if not b:
        return
    at.check(pre + "premise: the new server answered 5 requests",
             len(sent_b) == 5 and not [s for s in sent_b if s["error"]],
             [s["error"] for s in sent_b])
    at.check(pre + "agentprof ends by itself (every traced process has exited), exit 0",
             rc == 0 and "every traced process has exited" in err, "rc %s: %r" % (rc, err[-300:]))
    recs = at.load_jsonl(reqs)
    ids = by_rid(recs)
    b_ids = [s["request_id"] for s in sent_b]
    at.check(pre + "none of the new process's requests is recorded",
             not [i for i in b_ids if i in ids], [i for i in b_ids if i in ids])
    r = (ids.get(kid) or [None])[0]
    at.check(pre + "the killed request: incomplete, task_exited",
             r is not None and r["incomplete"] and r["end"] == "task_exited", r)
    at.check(pre + "the requests before the kill are recorded",
             all(s["request_id"] in ids for s in done), [s["request_id"] for s in done])


# 3 ---------------------------------------------------------------------------

def traced_c_server(tmp, tag):
    """The C server, traced: (srv, port, truth, requests file, profile, agentprof)."""
    truth = os.path.join(tmp, tag + "-truth.jsonl")
    reqs, prof = os.path.join(tmp, tag + "-reqs.jsonl"), os.path.join(tmp, tag + "-prof.json")
    srv, port = at.start_server("c", truth)
    fl.track(srv)
    ap = fl.start_ap(["-q", "-p", srv.pid, "--requests", reqs, "-o", prof])
    return srv, port, truth, reqs, prof, ap


def test_client_reset(tmp):
    pre = "client resets mid-response: "
    srv, port, truth, reqs, prof, ap = traced_c_server(tmp, "reset")
    xid = rid("rst")
    try:
        s = socket.create_connection((HOST, port), timeout=10)
        t0 = time.monotonic()
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n\r\n"
                   % (drive.stream_path(xid, 2000, 10), xid)).encode())
        first = s.recv(4096)
        got_at = time.monotonic() - t0
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
        reset_at = time.monotonic() - t0
        time.sleep(0.6)  # the server notices at its next write, after a chunk's burn
        after = drive.keepalive(HOST, port, 1, ms=3, prefix=PREFIX + "next")
        time.sleep(0.1)
        ap.send_signal(signal.SIGINT)
        rc = fl.wait_exit(ap)
        err = ap._err.text()
    finally:
        if ap.poll() is None:
            ap.kill()
        at.stop_server(srv)
    # The server burns 200 ms before each of its 10 chunks, and writes no
    # truth line for a request it could not finish: the bounds come from that.
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    recs = by_rid(at.load_jsonl(reqs))
    at.check(pre + "premises: a first chunk read (%.0f ms), agentprof exits 0" % (got_at * 1e3),
             first.startswith(b"HTTP/1.1 200") and rc == 0, (first[:20], rc, err[-200:]))
    r = recs.get(xid) or []
    at.check(pre + "one record for it", len(r) == 1, len(r))
    if len(r) == 1:
        r = r[0]
        at.check(pre + "closed off by the reset: end conn_closed, status 200, complete",
                 r["end"] == "conn_closed" and r["status"] == 200 and not r["incomplete"],
                 {k: r[k] for k in ("end", "status", "incomplete")})
        at.check(pre + "duration ends by the reset (%.0f ms), not at the failed write 200 ms "
                 "later" % (reset_at * 1e3), r["duration_ns"] <= (reset_at + 0.05) * 1e9,
                 r["duration_ns"])
        at.check(pre + "tx_bytes: the %d bytes the client got before it reset" % len(first),
                 r["tx_bytes"] == len(first), r["tx_bytes"])
        at.check(pre + "CPU: the first chunk's 200 ms, not the next one's after the reset",
                 160e6 <= r["cpu_ns"] < 300e6, r["cpu_ns"])
    n = recs.get(after[0]["request_id"]) if after else None
    tn = t.get(after[0]["request_id"]) if after else None
    at.check(pre + "the next request is recorded exactly",
             n and tn and len(n) == 1 and n[0]["tx_bytes"] == tn["tx_bytes"]
             and n[0]["rx_bytes"] == tn["rx_bytes"] and n[0]["status"] == tn["status"], (n, tn))


# 4 ---------------------------------------------------------------------------

IDLE = 10000
BUSY = 300


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(n, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))


def exchange(s, rid_):
    """One GET on socket s; returns the status (response read to its end) or None."""
    s.sendall(("GET /cpu/%s?ms=0 HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n\r\n"
               % (rid_.rsplit("-", 1)[1], rid_)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            return None
        body += chunk
    return int(head.split()[1])


def test_idle_10k(tmp):
    pre = "%d idle keep-alive connections: " % IDLE
    truth = os.path.join(tmp, "idle-truth.jsonl")
    reqs, prof = os.path.join(tmp, "idle-reqs.jsonl"), os.path.join(tmp, "idle-prof.json")
    raise_nofile(IDLE + 1000)
    open(truth, "w").close()
    srv = fl.track(subprocess.Popen(
        [at.PYTHON, at.ASYNCIO_SERVER, "--port", "0", "--truth", truth],
        stdout=subprocess.PIPE, text=True, cwd=at.ROOT,
        preexec_fn=lambda: raise_nofile(IDLE + 1000)))
    srv._out = at._Lines(srv.stdout)
    line = srv._out.wait_for(lambda l: l.startswith("listening "), 20)
    port = int(line.split()[1])
    socks, sent, bad = [], [], []
    ap = fl.start_ap(["-q", "-p", srv.pid, "--requests", reqs, "-o", prof])
    try:
        for k in range(IDLE):
            s = socket.create_connection((HOST, port), timeout=20)
            socks.append(s)
            i = rid("idle")
            st = exchange(s, i)
            sent.append(i)
            if st != 200:
                bad.append((k, st))
        rss_idle = fl.rss_kib(ap.pid)
        rng = random.Random(10000)
        for k in range(BUSY):
            s = socks[rng.randrange(IDLE)]
            i = rid("busy")
            st = exchange(s, i)
            sent.append(i)
            if st != 200:
                bad.append(("busy", k, st))
        time.sleep(0.3)
        ap.send_signal(signal.SIGINT)
        rc = fl.wait_exit(ap, 60)
        err = ap._err.text()
    finally:
        for s in socks:
            s.close()
        if ap.poll() is None:
            ap.kill()
        at.stop_server(srv)
    at.check(pre + "premise: every request answered 200 (%d)" % len(sent), not bad, bad[:3])
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s: %r" % (rc, err[-300:]))
    recs = at.load_jsonl(reqs)
    ids = by_rid(recs)
    missing = [i for i in sent if i not in ids]
    dup = [i for i in sent if len(ids.get(i, [])) > 1]
    at.check(pre + "all %d requests recorded once" % len(sent), not missing and not dup,
             "missing %d (%s), duplicated %d" % (len(missing), missing[:3], len(dup)))
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    wrong = [(i, k) for i in sent if i in ids for k in ("status", "rx_bytes", "tx_bytes")
             if ids[i][0][k] != t.get(i, {}).get(k)]
    at.check(pre + "status and bytes equal the server's truth", not wrong, wrong[:4])
    run = (fl.load_profile(prof) or {}).get("run", {})
    at.check(pre + "every connection tracked, no record dropped",
             run.get("conns_map_full") == 0 and run.get("ringbuf_drops") == 0, run)
    # An answered request stays open until its connection's next head or its
    # end (it may still burn CPU after its response): 10,000 of them are more
    # than the 8192 slots, so starts close the oldest off early, complete.
    full = run.get("requests_map_full", 0)
    at.check(pre + "answered requests closed off early to free a slot (%d) are said, with "
             "their count" % full, not full or ("%d requests closed off early" % full) in err,
             err[-400:])
    at.check(pre + "every record complete", not [r for r in recs if r["incomplete"]],
             [r for r in recs if r["incomplete"]][:2])
    at.check(pre + "agentprof's RSS with every connection idle: %d KiB (< 256 MiB)" % rss_idle,
             0 < rss_idle < 256 * 1024, rss_idle)


# 5 ---------------------------------------------------------------------------

def test_ringbuf_burst(tmp):
    pre = "ring buffer overflowed by a burst: "
    srv, port, truth, reqs, prof, ap = traced_c_server(tmp, "burst")
    try:
        os.kill(ap.pid, signal.SIGSTOP)
        w = subprocess.run(["wrk", "-t1", "-c8", "-d4s", "http://%s:%d/cpu/1?ms=0" % (HOST, port)],
                           capture_output=True, text=True, timeout=60)
        os.kill(ap.pid, signal.SIGCONT)
        time.sleep(0.5)
        ap.send_signal(signal.SIGINT)
        rc = fl.wait_exit(ap, 60)
        err = ap._err.text()
    finally:
        if ap.poll() is None:
            os.kill(ap.pid, signal.SIGCONT)
            ap.kill()
        at.stop_server(srv)
    truth_lines = at.load_jsonl(truth)
    recs = at.load_jsonl(reqs)
    run = (fl.load_profile(prof) or {}).get("run", {})
    drops = run.get("ringbuf_drops", 0)
    at.check(pre + "premises: wrk ran, agentprof exits 0",
             w.returncode == 0 and rc == 0, (w.stderr[-200:], rc, err[-300:]))
    at.check(pre + "premise: the burst (%d requests) overflowed the buffer: %d drops"
             % (len(truth_lines), drops), drops > 0, run)
    at.check(pre + "records (%d) + drops (%d) == requests answered (%d)"
             % (len(recs), drops, len(truth_lines)), len(recs) + drops == len(truth_lines))
    at.check(pre + "stderr says how many were dropped",
             ("%d request records dropped: ring buffer full" % drops) in err, err[-400:])
    want = {(x["status"], x["rx_bytes"], x["tx_bytes"]) for x in truth_lines}
    wrong = [r for r in recs if (r["status"], r["rx_bytes"], r["tx_bytes"]) not in want
             or r["incomplete"] or r["route"] != "/cpu/:id"]
    at.check(pre + "every record equals a truth line (status, bytes, route, complete)",
             not wrong, (len(wrong), wrong[:2], want))
    at.check(pre + "no other loss",
             run.get("requests_map_full") == 0 and run.get("conns_map_full") == 0, run)


TESTS = {"pg": test_pg_restart, "pid": test_pid_reuse, "reset": test_client_reset,
         "idle": test_idle_10k, "burst": test_ringbuf_burst}


def main():
    at.build_cpu_server()
    names = sys.argv[1:] or list(TESTS)
    try:
        with tempfile.TemporaryDirectory(prefix="agentprof-inject-") as tmp:
            os.chmod(tmp, 0o755)  # the private PostgreSQL runs as postgres under it
            for name in names:
                try:
                    TESTS[name](tmp)
                except Exception as e:  # one failed check; the rest still run
                    import traceback
                    traceback.print_exc()
                    at.check("%s ran to the end" % TESTS[name].__name__, False, repr(e))
    finally:
        fl.cleanup()
    at.report()


if __name__ == "__main__":
    main()
