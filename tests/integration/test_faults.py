#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: `agentprof record` under bad input and awkward process and
connection life cycles. Every assertion is against ground truth: the C
server's --truth file (tests/servers/cpu_server.c) or the bytes this test sent.

  1. command line errors: a PID that does not exist, -p abc, -d 0, an unknown
     option, a COMMAND that cannot be run: non-zero exit, a clear message;
  2. `-- COMMAND`: the server is started by agentprof, traced from its first
     instruction, and terminated when tracing stops; also when COMMAND is a
     shell that runs the server as its child; and -p with a thread id (not a
     process id) either traces that thread's process or is refused;
  3. -p on a parent: a server it forks after tracing started, and a server it
     forked before agentprof started, are both traced;
  4. no -p: every HTTP server on the host is traced;
  5. the server is SIGKILLed mid-request: an incomplete record, end
     "task_exited", with the CPU it burnt;
  6. malformed and non-HTTP bytes on traced sockets (no HTTP version, TLS
     ClientHello, random bytes, a request line longer than the 1024-byte
     capture, garbage after a request on a keep-alive connection): counted,
     never recorded, and valid requests around them are recorded exactly;
  7. SIGINT while requests are open: an answered request on an idle keep-alive
     connection and one whose response has not started are both flushed;
  8. a request head split over three send()s with pauses;
  9. HTTP/1.0 without keep-alive, and HEAD;
 10. a request open (its body half sent) while 9000 newer requests start and
     finish on another connection: more than the 8192 slots of open
     requests, so a slot taken in turn would be given away; it completes
     with its true bytes and status, and nothing is flushed early.
(8 and 9 run inside the recording of 6: each recording costs seconds of BPF
attach and detach.)

Usage: test_faults.py   (root; needs build/agentprof and build/tests/cpu_server)
"""

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time

import agentprof_test as at
import drive
import faultlib as fl

HOST = "127.0.0.1"
PREFIX = "flt%d" % os.getpid()

# Processes this test started; whatever is still alive at the end is killed.
_pids = set()
track = fl.track


def cleanup():
    fl.cleanup()
    for pid in _pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def alive(pid):
    """True if /proc/PID exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def thread_cpu_ns(pid, tid):
    """On-CPU time of a thread so far (schedstat), 0 if it is gone."""
    try:
        with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def wait_thread_burnt(pid, ns, exclude=(), timeout=15):
    """Waits until a thread of pid (not in exclude) has run ns on CPU; returns (tid, ns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
        except OSError:
            return None, 0
        for tid in tids:
            if tid != pid and tid not in exclude:
                used = thread_cpu_ns(pid, tid)
                if used >= ns:
                    return tid, used
        time.sleep(0.01)
    return None, 0


def threads_of(pid):
    try:
        return {int(t) for t in os.listdir("/proc/%d/task" % pid)}
    except OSError:
        return set()


def rid(tag):
    return drive.next_id("%s%s" % (PREFIX, tag))


free_port = fl.free_port


def run_cli(args, timeout=30):
    """Runs `agentprof ARGS` to completion; returns (rc, stdout, stderr)."""
    p = subprocess.run([at.AGENTPROF] + args, capture_output=True, text=True,
                       timeout=timeout, cwd=at.ROOT)
    return p.returncode, p.stdout, p.stderr


def start_ap(args, reqs, prof, command=None, timeout=30):
    """`agentprof record --requests REQS -o PROF ARGS [-- COMMAND]`, once tracing.

    Unlike at.start_agentprof, the output options go before `-- COMMAND`.
    """
    cmd = [at.AGENTPROF, "record", "--requests", reqs, "-o", prof] + [str(a) for a in args]
    if command:
        cmd += ["--"] + command
    p = track(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=at.ROOT))
    p._out = at._Lines(p.stdout)
    p._err = at._Lines(p.stderr)
    if p._err.wait_for(lambda l: l.startswith("agentprof: tracing"), timeout) is None:
        if p.poll() is None:
            p.kill()
        p.wait()
        raise RuntimeError("agentprof did not start tracing (rc=%s): %s\n%s"
                           % (p.returncode, cmd, p._err.text(1)))
    return p


def start_server(truth):
    srv, port = at.start_server("c", truth)
    track(srv)
    return srv, port


def load_profile(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": str(e), "run": {}, "groups": []}


def by_rid(recs):
    out = {}
    for r in recs:
        out.setdefault(at.record_request_id(r), []).append(r)
    return out


def expected_route(path):
    return "/" + path.split("/")[1] + "/:id"


def compare(rec, t):
    """Differences between an agentprof record and the server's truth line."""
    bad = []
    for k in ("method", "path", "status", "rx_bytes", "tx_bytes"):
        if rec.get(k) != t.get(k):
            bad.append("%s %r != truth %r" % (k, rec.get(k), t.get(k)))
    if rec.get("route") != expected_route(t["path"]):
        bad.append("route %r" % rec.get("route"))
    if rec.get("pid") != t["pid"]:
        bad.append("pid %r != truth %r" % (rec.get("pid"), t["pid"]))
    if rec.get("incomplete"):
        bad.append("incomplete")
    return bad


def check_matched(pre, recs, truth, ids, pid=None):
    """Every id in ids: exactly one record, equal to its truth line."""
    recs_by = by_rid(recs)
    truth_by = {t["request_id"]: t for t in truth if t.get("request_id")}
    missing = [i for i in ids if i not in recs_by]
    dup = [i for i in ids if len(recs_by.get(i, [])) > 1]
    no_truth = [i for i in ids if i not in truth_by]
    at.check(pre + "server wrote a truth line per request", not no_truth, no_truth)
    at.check(pre + "%d requests recorded, once each" % len(ids), not missing and not dup,
             "missing %s, duplicated %s, %d records" % (missing, dup, len(recs)))
    bad = []
    for i in ids:
        if i in recs_by and i in truth_by:
            d = compare(recs_by[i][0], truth_by[i])
            if pid is not None and recs_by[i][0].get("pid") != pid:
                d.append("pid %r != %r" % (recs_by[i][0].get("pid"), pid))
            if d:
                bad.append((i, d))
    at.check(pre + "method, path, route, status, bytes and pid match the truth", not bad,
             bad[:3])


def recv_all(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not b:
            break
        data += b
    return data


def raw_exchange(port, pieces, pause=0.0, shut_wr=False):
    """Sends pieces (one send() each, pause s apart), then reads until EOF."""
    s = socket.create_connection((HOST, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for k, piece in enumerate(pieces):
            if k and pause:
                time.sleep(pause)
            s.sendall(piece)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        return recv_all(s)
    finally:
        s.close()


def status_of(resp):
    try:
        return int(resp.split(b"\r\n", 1)[0].split()[1])
    except (IndexError, ValueError):
        return None


# 1 ---------------------------------------------------------------------------

def test_cli_errors(tmp):
    pre = "cli: "
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    gone = p.pid
    at.check(pre + "premise: pid %d is gone" % gone, not os.path.exists("/proc/%d" % gone))
    rc, out, err = run_cli(["record", "-p", str(gone), "-d", "1"])
    lines = [l for l in err.splitlines() if l.strip()]
    at.check(pre + "-p of a PID that does not exist: non-zero exit", rc not in (0, None),
             "rc %s" % rc)
    at.check(pre + "-p of a PID that does not exist: one stderr line saying so",
             len(lines) == 1 and "does not exist" in lines[0] and str(gone) in lines[0]
             and "Traceback" not in err and "tracing" not in err, repr(err))

    for args, what in ((["-p", "abc"], "invalid PID"), (["-d", "0"], "invalid duration"),
                       (["--bogus-option"], "unrecognized option")):
        rc, out, err = run_cli(["record"] + args)
        at.check(pre + "record %s: usage error, non-zero exit" % " ".join(args),
                 rc not in (0, None) and what in err and "--help" in err
                 and "tracing" not in err, "rc %s, stderr %r" % (rc, err))
    # The hint must name a command the user can type.
    rc, out, err = run_cli(["record", "-p", "abc"])
    at.check(pre + "usage hint names `agentprof record --help`",
             "agentprof record --help" in err, repr(err))

    # A COMMAND that cannot be run is an error, not a successful empty run.
    reqs, prof = os.path.join(tmp, "cli-reqs.jsonl"), os.path.join(tmp, "cli-prof.json")
    rc, out, err = run_cli(["record", "-q", "--requests", reqs, "-o", prof, "--",
                            "/nonexistent/agentprof-test-cmd"])
    at.check(pre + "-- COMMAND that does not exist: says so", "cannot run" in err, repr(err))
    at.check(pre + "-- COMMAND that does not exist: non-zero exit", rc not in (0, None),
             "rc %s, stderr %r" % (rc, err))


# 2 ---------------------------------------------------------------------------

def test_command(tmp):
    pre = "-- COMMAND: "
    truth = os.path.join(tmp, "cmd-truth.jsonl")
    reqs, prof = os.path.join(tmp, "cmd-reqs.jsonl"), os.path.join(tmp, "cmd-prof.json")
    open(truth, "w").close()
    at.build_cpu_server()
    port = free_port()
    ap = start_ap([], reqs, prof, command=[at.CPU_SERVER, "--port", str(port), "--truth", truth])
    listening = at.wait_listening(port, HOST)
    at.check(pre + "server started by agentprof listens", listening, "port %d" % port)
    sent = drive.keepalive(HOST, port, 5, ms=3, prefix=PREFIX + "cmd") if listening else []
    time.sleep(0.1)
    t = at.load_jsonl(truth)
    for line in t:
        _pids.add(line["pid"])
    rc, out, err = at.stop_agentprof(ap)
    at.check(pre + "agentprof exits 0 at SIGINT", rc == 0, "rc %s, stderr %r" % (rc, err[-400:]))
    at.check(pre + "client saw no errors", len(sent) == 5 and not [s for s in sent if s["error"]],
             [s["error"] for s in sent])
    pids = {line["pid"] for line in t}
    at.check(pre + "truth from one server process", len(pids) == 1, pids)
    pid = pids.pop() if len(pids) == 1 else None
    check_matched(pre, at.load_jsonl(reqs), t, [s["request_id"] for s in sent], pid=pid)
    at.check(pre + "tracing line names the server's pid",
             pid is not None and ("(pid %d)" % pid) in err, err.splitlines()[:1])
    at.check(pre + "server terminated when tracing stopped (not in /proc)",
             pid is not None and not os.path.exists("/proc/%d" % pid),
             "pid %s still exists" % pid)


def test_command_wrapper(tmp):
    """`-- sh -c 'server; true'`: the server is COMMAND's child; it must not outlive the run."""
    pre = "-- sh -c 'server; true': "
    truth = os.path.join(tmp, "wrap-truth.jsonl")
    reqs, prof = os.path.join(tmp, "wrap-reqs.jsonl"), os.path.join(tmp, "wrap-prof.json")
    log = os.path.join(tmp, "wrap-server.log")
    open(truth, "w").close()
    port = free_port()
    # the server's output goes to a file: a stray server must not hold agentprof's pipes
    script = "%s --port %d --truth %s >%s 2>&1; true" % (at.CPU_SERVER, port, truth, log)
    ap = start_ap([], reqs, prof, command=["/bin/sh", "-c", script])
    listening = at.wait_listening(port, HOST)
    sent = drive.keepalive(HOST, port, 3, ms=3, prefix=PREFIX + "wrap") if listening else []
    time.sleep(0.1)
    t = at.load_jsonl(truth)
    pids = {line["pid"] for line in t}
    _pids.update(pids)
    rc, out, err = at.stop_agentprof(ap)
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, %r" % (rc, err[-400:]))
    pid = pids.pop() if len(pids) == 1 else None
    check_matched(pre, at.load_jsonl(reqs), t, [s["request_id"] for s in sent], pid=pid)
    deadline = time.monotonic() + 1
    while pid and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    at.check(pre + "the server (COMMAND's child) does not outlive agentprof",
             pid is not None and not alive(pid),
             "server pid %s still running after agentprof exited" % pid)
    if pid and alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_thread_id(tmp):
    """-p with a thread id (not a process id): trace its process, or refuse clearly."""
    pre = "-p TID: "
    truth = os.path.join(tmp, "tid-truth.jsonl")
    reqs, prof = os.path.join(tmp, "tid-reqs.jsonl"), os.path.join(tmp, "tid-prof.json")
    srv, port = start_server(truth)
    sent, rc, err, started = [], None, "", False
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=20)
        first = rid("tid")
        drive.request(conn, "GET", drive.cpu_path(first, 1), first, "simple", conn_name="t")
        tids = sorted(threads_of(srv.pid) - {srv.pid})
        at.check(pre + "premise: the connection's thread exists", len(tids) == 1, tids)
        try:
            ap = start_ap(["-p", tids[0]], reqs, prof, timeout=10)
            started = True
        except RuntimeError as e:
            err = str(e)
        if started:
            nid = rid("tid")
            sent.append(drive.request(conn, "GET", drive.cpu_path(nid, 2), nid, "simple",
                                      conn_name="t"))
            sent += drive.keepalive(HOST, port, 2, ms=2, prefix=PREFIX + "tid")
            time.sleep(0.1)
            rc, out, err = at.stop_agentprof(ap)
        conn.close()
    finally:
        at.stop_server(srv)
    if not started:
        at.check(pre + "refused with a message about threads",
                 "thread" in err.lower(), err[-300:])
        return
    recs = by_rid(at.load_jsonl(reqs))
    got = [s["request_id"] for s in sent if s["request_id"] in recs]
    at.check(pre + "accepted, so the thread's process is traced (%d requests sent)" % len(sent),
             len(got) == len(sent),
             "%d of %d recorded; stderr %r" % (len(got), len(sent), err[-200:]))


# 3 ---------------------------------------------------------------------------

def sh_server(port, truth, gate):
    """/bin/sh that (after a line on stdin, if gate) forks the C server, then `true`."""
    open(truth, "w").close()
    at.build_cpu_server()
    script = '%s%s --port %d --truth %s; true' % ("read _; " if gate else "", at.CPU_SERVER,
                                                   port, truth)
    sh = track(subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd=at.ROOT))
    sh._out = at._Lines(sh.stdout)
    return sh


def server_pid_of(sh):
    """The sh's child process (the server), from /proc."""
    try:
        with open("/proc/%d/task/%d/children" % (sh.pid, sh.pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    return kids[0] if len(kids) == 1 else None


def stop_sh(sh, server_pid):
    if server_pid and alive(server_pid):
        os.kill(server_pid, signal.SIGINT)  # (sh prints "Terminated" for SIGTERM)
    try:
        sh.stdin.close()
    except OSError:
        pass
    try:
        sh.wait(10)
    except subprocess.TimeoutExpired:
        sh.kill()
        sh.wait()


def test_children(tmp):
    # a) the server is forked by the traced parent after tracing started
    pre = "-p parent, child forked later: "
    truth = os.path.join(tmp, "fork-truth.jsonl")
    reqs, prof = os.path.join(tmp, "fork-reqs.jsonl"), os.path.join(tmp, "fork-prof.json")
    port = free_port()
    sh = sh_server(port, truth, gate=True)
    spid = None
    try:
        ap = start_ap(["-p", sh.pid], reqs, prof)
        # The sh forks the server only when told: after tracing started (deterministic).
        at.check(pre + "premise: server not started before tracing",
                 server_pid_of(sh) is None and not sh._out.lines)
        sh.stdin.write("go\n")
        sh.stdin.flush()
        line = sh._out.wait_for(lambda l: l.startswith("listening "), 10)
        spid = server_pid_of(sh)
        if spid:
            _pids.add(spid)
        at.check(pre + "server listening", line is not None and spid, line)
        sent = drive.keepalive(HOST, port, 5, ms=3, prefix=PREFIX + "fork") if line else []
        sent += drive.new_conn_each(HOST, port, 2, ms=3, prefix=PREFIX + "fork") if line else []
        time.sleep(0.1)
        rc, out, err = at.stop_agentprof(ap)
    finally:
        stop_sh(sh, spid)
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, %r" % (rc, err[-400:]))
    at.check(pre + "client saw no errors", sent and not [s for s in sent if s["error"]],
             [s["error"] for s in sent])
    t = at.load_jsonl(truth)
    recs = at.load_jsonl(reqs)
    check_matched(pre, recs, t, [s["request_id"] for s in sent], pid=spid)
    at.check(pre + "records carry the child's pid, not the parent's",
             recs and spid and all(r["pid"] == spid != sh.pid for r in recs),
             "server %s sh %s records %s" % (spid, sh.pid, sorted({r["pid"] for r in recs})))

    # b) the server existed (listening) before agentprof started
    pre = "-p parent, existing child: "
    truth = os.path.join(tmp, "desc-truth.jsonl")
    reqs, prof = os.path.join(tmp, "desc-reqs.jsonl"), os.path.join(tmp, "desc-prof.json")
    port = free_port()
    sh = sh_server(port, truth, gate=False)
    spid = None
    try:
        line = sh._out.wait_for(lambda l: l.startswith("listening "), 10)
        spid = server_pid_of(sh)
        if spid:
            _pids.add(spid)
        at.check(pre + "premise: server listening before agentprof starts",
                 line is not None and spid, line)
        ap = start_ap(["-p", sh.pid], reqs, prof)
        sent = drive.keepalive(HOST, port, 5, ms=3, prefix=PREFIX + "desc") if line else []
        time.sleep(0.1)
        rc, out, err = at.stop_agentprof(ap)
    finally:
        stop_sh(sh, spid)
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, %r" % (rc, err[-400:]))
    at.check(pre + "client saw no errors", sent and not [s for s in sent if s["error"]],
             [s["error"] for s in sent])
    check_matched(pre, at.load_jsonl(reqs), at.load_jsonl(truth),
                  [s["request_id"] for s in sent], pid=spid)


# 4 ---------------------------------------------------------------------------

def test_trace_all(tmp):
    pre = "no -p: "
    truth = os.path.join(tmp, "all-truth.jsonl")
    reqs, prof = os.path.join(tmp, "all-reqs.jsonl"), os.path.join(tmp, "all-prof.json")
    srv, port = start_server(truth)
    try:
        ap = start_ap([], reqs, prof)
        sent = drive.keepalive(HOST, port, 5, ms=3, prefix=PREFIX + "all")
        time.sleep(0.1)
        rc, out, err = at.stop_agentprof(ap)
    finally:
        at.stop_server(srv)
    at.check(pre + "tracing line says every HTTP server", "every HTTP server" in err,
             err.splitlines()[:1])
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, %r" % (rc, err[-400:]))
    at.check(pre + "client saw no errors", not [s for s in sent if s["error"]],
             [s["error"] for s in sent])
    ids = [s["request_id"] for s in sent]
    recs = [r for r in at.load_jsonl(reqs) if at.record_request_id(r) in set(ids)]
    check_matched(pre, recs, at.load_jsonl(truth), ids, pid=srv.pid)


# 5 ---------------------------------------------------------------------------

def test_killed_mid_request(tmp):
    pre = "server SIGKILLed mid-request: "
    truth = os.path.join(tmp, "kill-truth.jsonl")
    reqs, prof = os.path.join(tmp, "kill-reqs.jsonl"), os.path.join(tmp, "kill-prof.json")
    srv, port = start_server(truth)
    result = []
    try:
        ap = start_ap(["-p", srv.pid], reqs, prof)
        # one finished request first, on its own connection
        done = drive.new_conn_each(HOST, port, 1, ms=2, prefix=PREFIX + "kill")
        conn = http.client.HTTPConnection(HOST, port, timeout=20)
        kid = rid("kill")
        th = threading.Thread(target=lambda: result.append(drive.request(
            conn, "GET", drive.cpu_path(kid, 3000), kid, "complex", conn_name="k")))
        th.start()
        # ~0.5 s of CPU before the kill, however loaded the host is
        time.sleep(0.5)
        tid, burnt = wait_thread_burnt(srv.pid, 500_000_000)
        srv.kill()
        srv.wait()
        th.join(20)
        conn.close()
        # agentprof notices every traced process has exited, or takes SIGINT
        rc, out, err = at.stop_agentprof(ap)
    finally:
        at.stop_server(srv)
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, %r" % (rc, err[-400:]))
    at.check(pre + "the client's request failed", result and result[0]["error"], result)
    recs = by_rid(at.load_jsonl(reqs))
    r = (recs.get(kid) or [None])[0]
    at.check(pre + "a record for the request", r is not None, sorted(k for k in recs if k))
    if r is None:
        return
    at.check(pre + "incomplete, end task_exited, status 0",
             r["incomplete"] is True and r["end"] == "task_exited" and r["status"] == 0,
             {k: r[k] for k in ("incomplete", "end", "status")})
    at.check(pre + "premise: the server thread burnt >= 500 ms before the kill", tid,
             "thread %s burnt %d ns" % (tid, burnt))
    at.check(pre + "cpu_ns >= 400 ms (the thread burnt %d ms before the kill)" % (burnt // 10**6),
             r["cpu_ns"] >= 400_000_000, "cpu_ns %d" % r["cpu_ns"])
    at.check(pre + "route /cpu/:id, pid of the server",
             r["route"] == "/cpu/:id" and r["method"] == "GET" and r["pid"] == srv.pid,
             {k: r[k] for k in ("route", "method", "pid")})
    did = done[0]["request_id"]
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    d = (recs.get(did) or [None])[0]
    at.check(pre + "the earlier request is recorded complete",
             d is not None and did in t and not compare(d, t[did]),
             compare(d, t[did]) if d and did in t else (d, t.get(did)))


# 6 ---------------------------------------------------------------------------

def test_malformed(tmp):
    pre = "malformed traffic: "
    truth = os.path.join(tmp, "bad-truth.jsonl")
    reqs, prof = os.path.join(tmp, "bad-reqs.jsonl"), os.path.join(tmp, "bad-prof.json")
    srv, port = start_server(truth)
    rng = random.Random(20240611)
    tls = (bytes.fromhex("16030100c8010000c40303") + bytes(rng.randrange(256) for _ in range(32))
           + b"\x00\x00\x04\x13\x01\x13\x02\x01\x00\x00\x97\x00\x00\x00\x0e\x00\x0c"
           + b"\x00\x00\x09localhost" + bytes(rng.randrange(256) for _ in range(120)))
    junk = bytes(rng.randrange(256) for _ in range(700))
    bad_d = rid("bad")
    long_line = (b"GET /" + b"x" * 2000 + b" HTTP/1.1\r\nHost: t\r\nX-Request-Id: "
                 + bad_d.encode() + b"\r\nConnection: close\r\n\r\n")
    valid = []
    try:
        ap = start_ap(["-p", srv.pid], reqs, prof)
        ra = raw_exchange(port, [b"GET /x\r\n\r\n"])
        rb = raw_exchange(port, [tls], shut_wr=True)
        rc_ = raw_exchange(port, [junk], shut_wr=True)
        rd = raw_exchange(port, [long_line])
        # (e) a valid request, then garbage on the same keep-alive connection
        eid = rid("bad")
        re_ = raw_exchange(port, [("GET /cpu/%s?ms=2 HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n\r\n"
                                   % (eid.rsplit("-", 1)[1], eid)).encode(),
                                  b"\x00\x01\x02 not http at all \xff\xfe"], pause=0.2,
                           shut_wr=True)
        # 8, 9 in the same recording (each recording costs seconds of BPF attach/detach)
        split = send_split_and_http10(port)
        valid += drive.new_conn_each(HOST, port, 4, ms=3, prefix=PREFIX + "ok")
        valid += drive.keepalive(HOST, port, 3, ms=3, prefix=PREFIX + "ok")
        time.sleep(0.1)
        rc, out, err = at.stop_agentprof(ap)
    finally:
        at.stop_server(srv)
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, %r" % (rc, err[-400:]))
    at.check(pre + "premises: server answered 400 / nothing / nothing / 404 / 200",
             status_of(ra) == 400 and rb == b"" and rc_ == b"" and status_of(rd) == 404
             and status_of(re_) == 200 and not junk.startswith(
                 (b"GET", b"POST", b"PUT", b"HEAD", b"DELE", b"PATC", b"OPTI", b"CONN",
                  b"TRAC")),
             [r[:20] for r in (ra, rb, rc_, rd, re_)])
    at.check(pre + "client saw no errors on valid requests",
             not [s for s in valid if s["error"]], [s["error"] for s in valid])
    t = at.load_jsonl(truth)
    recs = at.load_jsonl(reqs)
    ids = [s["request_id"] for s in valid] + [eid, split["sid"], split["h10"], split["hid"]]
    check_matched(pre, recs, t, ids, pid=srv.pid)
    extra = [(r.get("method"), r.get("path", "")[:40], at.record_request_id(r)) for r in recs
             if at.record_request_id(r) not in set(ids)]
    at.check(pre + "no record for any bad input", not extra and len(recs) == len(ids),
             "%d records for %d valid requests; extra %s" % (len(recs), len(ids), extra[:4]))
    run = load_profile(prof).get("run", {})
    at.check(pre + "profile run.malformed_heads >= 1", run.get("malformed_heads", 0) >= 1, run)
    at.check(pre + "profile run.oversized_heads >= 1", run.get("oversized_heads", 0) >= 1, run)
    at.check(pre + "profile run.non_http_reads >= 1 (garbage on a known connection)",
             run.get("non_http_reads", 0) >= 1, run)
    at.check(pre + "stderr reports the skipped heads",
             "malformed request heads skipped" in err and "longer than the capture" in err,
             err[-600:])
    check_split_and_http10(split, reqs, truth, srv.pid)


# 7 ---------------------------------------------------------------------------

def test_flush_open(tmp):
    pre = "SIGINT with requests open: "
    truth = os.path.join(tmp, "open-truth.jsonl")
    reqs, prof = os.path.join(tmp, "open-reqs.jsonl"), os.path.join(tmp, "open-prof.json")
    srv, port = start_server(truth)
    slow = []
    try:
        ap = start_ap(["-p", srv.pid], reqs, prof)
        conn = http.client.HTTPConnection(HOST, port, timeout=20)
        aid = rid("open")
        answered = drive.request(conn, "GET", drive.cpu_path(aid, 3), aid, "simple",
                                 conn_name="a")
        before = threads_of(srv.pid)
        conn_b = http.client.HTTPConnection(HOST, port, timeout=20)
        bid = rid("open")
        th = threading.Thread(target=lambda: slow.append(drive.request(
            conn_b, "GET", drive.cpu_path(bid, 2000), bid, "complex", conn_name="b")))
        th.start()
        time.sleep(0.3)
        # its handler is running (burning CPU) on a new thread
        tid, burnt = wait_thread_burnt(srv.pid, 20_000_000, exclude=before)
        rc, out, err = at.stop_agentprof(ap)
        th.join(20)
        conn.close()
        conn_b.close()
        time.sleep(0.1)
    finally:
        at.stop_server(srv)
    at.check(pre + "agentprof exits 0", rc == 0, "rc %s, %r" % (rc, err[-400:]))
    at.check(pre + "premise: the slow request was being served at SIGINT", tid,
             "no new server thread burnt 20 ms")
    at.check(pre + "clients saw no errors (the slow one finishes after agentprof)",
             not answered["error"] and slow and not slow[0]["error"], (answered, slow))
    recs = by_rid(at.load_jsonl(reqs))
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    a = (recs.get(aid) or [None])[0]
    at.check(pre + "answered request on an idle keep-alive connection is recorded",
             a is not None and len(recs[aid]) == 1, sorted(k for k in recs if k))
    if a:
        at.check(pre + "answered request: end flushed, complete, matches the truth",
                 a["end"] == "flushed" and a["incomplete"] is False and aid in t
                 and not compare(a, t[aid]),
                 (a["end"], a["incomplete"], compare(a, t[aid]) if aid in t else "no truth"))
    b = (recs.get(bid) or [None])[0]
    at.check(pre + "request with no response yet is recorded", b is not None,
             sorted(k for k in recs if k))
    if b:
        at.check(pre + "unanswered request: incomplete, end flushed, status 0, tx 0",
                 b["incomplete"] is True and b["end"] == "flushed" and b["status"] == 0
                 and b["tx_bytes"] == 0 and b["route"] == "/cpu/:id",
                 {k: b[k] for k in ("incomplete", "end", "status", "tx_bytes", "route")})
    run = load_profile(prof).get("run", {})
    at.check(pre + "profile: run.flushed == 2, run.incomplete == 1",
             run.get("flushed") == 2 and run.get("incomplete") == 1, run)
    at.check(pre + "summary: 2 recorded, 1 incomplete, 2 still open",
             "2 requests recorded (1 incomplete, 2 still open at exit)" in err, err[-300:])


# 10 -------------------------------------------------------------------------

def test_long_open(tmp):
    pre = "request open across 9000 newer: "
    truth = os.path.join(tmp, "long-truth.jsonl")
    reqs, prof = os.path.join(tmp, "long-reqs.jsonl"), os.path.join(tmp, "long-prof.json")
    srv, port = start_server(truth)
    lid = rid("long")
    body = b"0123456789"
    head = ("POST %s HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (drive.echo_path(lid, 1), lid, len(body))).encode()
    try:
        ap = start_ap(["-p", srv.pid], reqs, prof)
        s = socket.create_connection((HOST, port), timeout=20)
        s.sendall(head + body[:5])
        time.sleep(0.2)  # the head is read: the request is open
        many = drive.keepalive(HOST, port, 9000, ms=0, prefix=PREFIX + "-many")
        s.sendall(body[5:])
        resp = recv_all(s)
        s.close()
        time.sleep(0.2)
        rc, out, err = at.stop_agentprof(ap)
    finally:
        at.stop_server(srv)
    at.check(pre + "premises: agentprof exits 0, 9000 answered, the long one 200",
             rc == 0 and not [m for m in many if m["error"]] and status_of(resp) == 200,
             (rc, err[-300:], [m["error"] for m in many if m["error"]][:2], resp[:40]))
    recs = at.load_jsonl(reqs)
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    mine = by_rid(recs).get(lid) or []
    at.check(pre + "9001 records", len(recs) == 9001, len(recs))
    at.check(pre + "one record for it, equal to the truth, closed by its connection",
             len(mine) == 1 and lid in t and not compare(mine[0], t[lid])
             and mine[0]["end"] == "conn_closed",
             [(compare(m, t[lid]) if lid in t else "no truth", m["end"]) for m in mine])
    run = load_profile(prof).get("run", {})
    at.check(pre + "nothing closed off early (requests_map_full 0, flushed 0)",
             run.get("requests_map_full") == 0 and run.get("flushed") == 0, run)


# 8, 9 ------------------------------------------------------------------------

def send_split_and_http10(port):
    """8 and 9 (run inside the malformed-traffic recording): returns what was sent."""
    sid, hid, h10 = rid("split"), rid("head"), rid("h10")
    num = lambda i: i.rsplit("-", 1)[1]
    pieces = [("GET /cpu/%s?ms=3 HTTP/1.1\r\nX-Request-Id: %s\r\n" % (num(sid), sid)).encode(),
              b"X-Request-Class: simple\r\nHost: 127.0",
              b".0.1\r\nConnection: close\r\n\r\n"]
    r_split = raw_exchange(port, pieces, pause=0.05)
    r_10 = raw_exchange(port, [("GET /cpu/%s?ms=2 HTTP/1.0\r\nX-Request-Id: %s\r\n\r\n"
                                % (num(h10), h10)).encode()])
    r_head = raw_exchange(port, [("HEAD /cpu/%s HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n"
                                  "Connection: close\r\n\r\n" % (num(hid), hid)).encode()])
    return dict(sid=sid, hid=hid, h10=h10, pieces=pieces, r_split=r_split, r_10=r_10,
                r_head=r_head)


def check_split_and_http10(ctx, reqs, truth, srv_pid):
    sid, hid, h10, pieces = ctx["sid"], ctx["hid"], ctx["h10"], ctx["pieces"]
    r_split, r_10, r_head = ctx["r_split"], ctx["r_10"], ctx["r_head"]
    pre = "split head / HTTP/1.0 / HEAD: "
    at.check(pre + "premises: responses 200, HTTP/1.0 200, HEAD answered",
             status_of(r_split) == 200 and r_10.startswith(b"HTTP/1.0 200")
             and status_of(r_head) is not None, [r[:20] for r in (r_split, r_10, r_head)])
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    recs = by_rid(at.load_jsonl(reqs))

    s = recs.get(sid) or []
    at.check("split head: one record, with the X-Request-Id of the first piece", len(s) == 1,
             sorted(k for k in recs if k))
    if s and sid in t:
        s = s[0]
        total = sum(len(p) for p in pieces)
        at.check("split head: method, route, status, pid match the truth",
                 s["method"] == "GET" and s["route"] == "/cpu/:id" and s["status"] == 200
                 and s["status"] == t[sid]["status"] and s["pid"] == srv_pid
                 and not s["incomplete"],
                 {k: s[k] for k in ("method", "route", "status", "pid", "incomplete")})
        at.check("split head: rx_bytes == bytes sent (%d)" % total,
                 s["rx_bytes"] == total == t[sid]["rx_bytes"],
                 "rx %d, truth %d" % (s["rx_bytes"], t[sid]["rx_bytes"]))
        at.check("split head: tx_bytes == truth", s["tx_bytes"] == t[sid]["tx_bytes"],
                 (s["tx_bytes"], t[sid]["tx_bytes"]))

    for name, i, method in (("HTTP/1.0", h10, "GET"), ("HEAD", hid, "HEAD")):
        r = recs.get(i) or []
        at.check("%s: one record" % name, len(r) == 1 and i in t, sorted(k for k in recs if k))
        if r and i in t:
            d = compare(r[0], t[i])
            at.check("%s: method %s, status %s as the server answered, complete, bytes"
                     % (name, method, t[i]["status"]),
                     r[0]["method"] == method and not d and r[0]["end"] == "conn_closed", d or r[0])


def main():
    at.build_cpu_server()
    try:
        with tempfile.TemporaryDirectory(prefix="agentprof-faults-") as tmp:
            for fn in (test_cli_errors, test_command, test_command_wrapper, test_thread_id,
                       test_children, test_trace_all,
                       test_killed_mid_request, test_malformed, test_flush_open,
                       test_long_open):
                try:
                    fn(tmp)
                except Exception as e:  # a crash is one failed check, the rest still run
                    import traceback
                    traceback.print_exc()
                    at.check("%s ran to the end" % fn.__name__, False, repr(e))
    finally:
        cleanup()
    at.report()


if __name__ == "__main__":
    main()
