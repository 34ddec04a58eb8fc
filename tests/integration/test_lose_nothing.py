#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: `agentprof record` fails early and loses nothing (issue 19).

Ground truth: the C server's --truth file and the request ids this test sent.

  1. bad output paths (-o or --requests in a directory that does not exist,
     -o naming a directory, a file used as a directory): refused at once
     with a message naming the path, before any BPF program is loaded,
     however long -d is;
  2. SIGTERM, SIGHUP and -d expiry: every request sent is in --requests and
     in the profile;
  3. a SIGINT, then SIGINTs and SIGTERMs every 10 ms while agentprof
     detaches and flushes: exit 0, nothing lost;
  4. stdout closed (`record | head` with head gone): the table cannot be
     printed, the profile and the JSON lines are still written;
  5. --requests while requests stream in, agentprof stopped with SIGSTOP at
     60 random instants (as Ctrl-Z and fg would: they must not end the
     recording): the file always ends at a line's end; then
     SIGKILL: every line parses, none of the BPF programs or links it held
     is left (bpftool), and a new `record` records exactly what it is sent;
     with `-- COMMAND`, COMMAND stops with it, and never runs at all when
     agentprof is killed before it traces;
  6. --requests on a file system that fills up (a 256 KiB tmpfs): agentprof
     says so and exits 1, the file holds whole lines only, and the profile
     (elsewhere) has every request.

Only in the default mode (tests/run): none of this depends on the hooks.

Usage: test_lose_nothing.py   (root; needs build/agentprof and build/tests/cpu_server)
"""

import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time

import agentprof_test as at
import drive
import faultlib as fl

HOST = "127.0.0.1"
PREFIX = "ln%d" % os.getpid()

track, cleanup, start_ap, wait_exit = fl.track, fl.cleanup, fl.start_ap, fl.wait_exit
jsonl_state = fl.jsonl_state


def profile_requests(path, pid):
    """Requests of pid's service in the profile at path (None: no readable profile)."""
    prof = fl.load_profile(path)
    if prof is None:
        return None
    return sum(g["requests"] for g in prof.get("groups", []) if g["route"] == "/cpu/:id")


def sent_ids(sent):
    return [s["request_id"] for s in sent if not s["error"]]


def recorded_ids(path):
    return {at.record_request_id(r) for r in at.load_jsonl(path)}


class Load:
    """Keep-alive clients sending ms=0 requests until stopped."""

    def __init__(self, port, clients=2):
        self.port, self.stop, self.sent = port, threading.Event(), []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop.is_set():
            self.sent += drive.keepalive(HOST, self.port, 50, ms=0, prefix=PREFIX + "load")

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return self.sent


# 1 ---------------------------------------------------------------------------

def test_bad_paths(tmp, srv):
    plain = os.path.join(tmp, "plain")
    open(plain, "w").close()
    cases = [(["-o", "/nonexistent/agentprof-dir/p.json"], "/nonexistent/agentprof-dir/p.json",
              "does not exist"),
             (["--requests", "/nonexistent/agentprof-dir/r.jsonl"],
              "/nonexistent/agentprof-dir/r.jsonl", "does not exist"),
             (["-o", tmp], tmp, "is a directory"),
             (["--requests", os.path.join(plain, "r.jsonl")], os.path.join(plain, "r.jsonl"),
              "cannot write")]
    for args, path, why in cases:
        pre = "bad path %s: " % " ".join(args)
        t0 = time.monotonic()
        try:
            p = subprocess.run([at.AGENTPROF, "record", "-q", "-p", str(srv.pid), "-d", "600"]
                               + args, capture_output=True, text=True, timeout=20)
            rc, err = p.returncode, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = None, (e.stderr or b"").decode(errors="replace")
        took = time.monotonic() - t0
        at.check(pre + "non-zero exit within 5 s (not after -d 600)",
                 rc not in (0, None) and took < 5, "rc %s after %.1f s" % (rc, took))
        at.check(pre + "the message names the path and why",
                 ("cannot write %s" % path) in err and why in err, repr(err))
        at.check(pre + "refused before loading anything",
                 "loaded" not in err and "tracing" not in err, repr(err))


# 2, 3 ------------------------------------------------------------------------

def run_stopped(tmp, srv, port, name, stop, args=()):
    """Records 20 requests, stops agentprof with stop(p); returns (rc, err, ids, reqs, prof)."""
    reqs, prof = os.path.join(tmp, name + ".jsonl"), os.path.join(tmp, name + ".json")
    p = start_ap(["-q", "-p", srv.pid, "--requests", reqs, "-o", prof] + list(args))
    sent = drive.keepalive(HOST, port, 20, ms=1, prefix=PREFIX + name)
    stop(p)
    rc = wait_exit(p)
    return rc, p._err.text(), sent_ids(sent), reqs, prof


def check_all_kept(pre, rc, err, ids, reqs, prof, srv):
    at.check(pre + "exit 0", rc == 0, "rc %s: %r" % (rc, err[-400:]))
    at.check(pre + "premise: 20 requests answered", len(ids) == 20, len(ids))
    got = recorded_ids(reqs)
    at.check(pre + "every request in --requests", set(ids) <= got,
             "%d of %d" % (len(set(ids) & got), len(ids)))
    n, problem = jsonl_state(reqs)
    at.check(pre + "--requests: whole lines, all parse", problem is None and n == len(ids),
             "%d lines, %s" % (n, problem))
    at.check(pre + "the profile counts every request",
             profile_requests(prof, srv.pid) == len(ids), profile_requests(prof, srv.pid))


def test_stop_signals(tmp, srv, port):
    for sig in (signal.SIGTERM, signal.SIGHUP):
        res = run_stopped(tmp, srv, port, "sig%d" % sig, lambda p: p.send_signal(sig))
        check_all_kept("%s: " % signal.Signals(sig).name, *res, srv)

    def expire(p):
        pass  # -d runs out by itself
    res = run_stopped(tmp, srv, port, "expiry", expire, ["-d", "5"])
    check_all_kept("-d expiry: ", *res, srv)
    at.check("-d expiry: premise: agentprof stopped by itself",
             "requests recorded" in res[1], res[1][-300:])


def test_repeated_signals(tmp, srv, port):
    def storm(p):
        p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        k = 0
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
            try:
                p.send_signal(signal.SIGINT if k % 2 else signal.SIGTERM)
            except ProcessLookupError:
                break
            k += 1
        storm.sent = k
    rc, err, ids, reqs, prof = run_stopped(tmp, srv, port, "storm", storm)
    at.check("SIGINT then a signal every 10 ms: premise: %d more sent while it flushed"
             % storm.sent, storm.sent >= 1, storm.sent)
    check_all_kept("SIGINT then a signal every 10 ms: ", rc, err, ids, reqs, prof, srv)


# 4 ---------------------------------------------------------------------------

def test_closed_stdout(tmp, srv, port):
    pre = "stdout closed: "
    reqs, prof = os.path.join(tmp, "pipe.jsonl"), os.path.join(tmp, "pipe.json")
    r, w = os.pipe()
    p = start_ap(["-p", srv.pid, "--requests", reqs, "-o", prof], stdout=w)
    os.close(w)
    os.close(r)  # the reader is gone: printing the table gets EPIPE
    sent = sent_ids(drive.keepalive(HOST, port, 20, ms=1, prefix=PREFIX + "pipe"))
    p.send_signal(signal.SIGINT)
    rc = wait_exit(p)
    err = p._err.text()
    at.check(pre + "not killed by SIGPIPE", rc is not None and rc >= 0, "rc %s" % rc)
    at.check(pre + "the profile counts every request",
             len(sent) == 20 and profile_requests(prof, srv.pid) == 20,
             (len(sent), profile_requests(prof, srv.pid), err[-300:]))
    at.check(pre + "every request in --requests", set(sent) <= recorded_ids(reqs),
             len(set(sent) & recorded_ids(reqs)))


# 5 ---------------------------------------------------------------------------

def held_bpf_ids(pid):
    """(prog ids, link ids) whose fds process pid holds (/proc/PID/fdinfo)."""
    progs, links = set(), set()
    d = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                info = f.read()
        except OSError:
            continue
        for line in info.splitlines():
            key, _, val = line.partition(":")
            if key == "prog_id":
                progs.add(int(val))
            elif key == "link_id":
                links.add(int(val))
    return progs, links


def bpftool_json(*args):
    out = subprocess.run(["bpftool"] + list(args) + ["--json"], capture_output=True, text=True)
    return json.loads(out.stdout or "[]") if out.returncode == 0 else []


def read_proc(pid, name):
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            return f.read()
    except OSError:
        return ""


def line_writers(pid):
    """pids of the --requests writer processes agentprof pid forked (src/lines.h)."""
    kids = [int(x) for x in read_proc(pid, "task/%d/children" % pid).split()]
    return [k for k in kids if read_proc(k, "comm").strip() == "agentprof-lines"]


def wait_gone(pids, timeout):
    """True once none of pids runs (gone, or a zombie nobody reaped), within timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # /proc/PID/stat: "pid (comm) S ...", the state after the last ')'
        if not any(read_proc(x, "stat").rpartition(")")[2][1:2] not in ("", "Z") for x in pids):
            return True
        time.sleep(0.02)
    return False


def test_crash(tmp, srv, port, truth):
    pre = "SIGKILL: "
    reqs, prof = os.path.join(tmp, "kill.jsonl"), os.path.join(tmp, "kill.json")
    p = start_ap(["-q", "-p", srv.pid, "--requests", reqs, "-o", prof])
    progs, links = held_bpf_ids(p.pid)
    listed = {x["id"] for x in bpftool_json("prog", "show")}
    at.check(pre + "premise: bpftool lists the programs agentprof holds (%d programs, %d links)"
             % (len(progs), len(links)), progs and links and progs <= listed,
             (len(progs), len(links), len(progs & listed)))
    load = Load(port)
    deadline = time.monotonic() + 10
    while os.path.getsize(reqs) < 4096 and time.monotonic() < deadline:
        time.sleep(0.05)
    rng = random.Random(19)
    bad, sizes = [], set()
    writers = line_writers(p.pid)
    at.check(pre + "premise: agentprof writes --requests through its line writer",
             len(writers) == 1, writers)
    for k in range(60):
        # Ctrl-Z stops the whole process group: agentprof and its writer.
        for pid in [p.pid] + writers:
            os.kill(pid, signal.SIGSTOP)
        with open(reqs, "rb") as f:
            data = f.read()
        for pid in [p.pid] + writers:
            os.kill(pid, signal.SIGCONT)
        sizes.add(len(data))
        if data and not data.endswith(b"\n"):
            bad.append((k, len(data), data[-40:]))
        # a stop restarts the poll's 100 ms timeout: leave it time to drain
        time.sleep(rng.uniform(0.1, 0.2))
    alive = p.poll() is None
    p.kill()
    wait_exit(p)
    gone = wait_gone(writers, 5)
    sent = load.end()
    at.check(pre + "60 stops and continues (as Ctrl-Z, fg) did not end the recording", alive,
             "rc %s: %r" % (p.returncode, p._err.text()[-300:]))
    at.check(pre + "premise: the file grew while sampled (%d sizes seen, %d requests sent)"
             % (len(sizes), len(sent)), len(sizes) >= 10, len(sizes))
    at.check(pre + "at 60 instants (SIGSTOP) the file ended at a line's end", not bad, bad[:3])
    at.check(pre + "the line writer ends within 5 s of agentprof's SIGKILL", gone, writers)
    n, problem = jsonl_state(reqs)
    at.check(pre + "after SIGKILL: %d whole lines, every one parses" % n,
             problem is None and n > 0, problem)
    left_p = progs & {x["id"] for x in bpftool_json("prog", "show")}
    left_l = links & {x["id"] for x in bpftool_json("link", "show")}
    left_lp = progs & {x.get("prog_id") for x in bpftool_json("link", "show")}
    at.check(pre + "no program of the killed agentprof is left (bpftool prog show)",
             not left_p, sorted(left_p)[:5])
    at.check(pre + "no link of it is left, none to its programs (bpftool link show)",
             not left_l and not left_lp, (sorted(left_l)[:5], sorted(left_lp)[:5]))
    time.sleep(0.2)

    pre = "after SIGKILL, a new record: "
    reqs2, prof2 = os.path.join(tmp, "after.jsonl"), os.path.join(tmp, "after.json")
    p = start_ap(["-q", "-p", srv.pid, "--requests", reqs2, "-o", prof2])
    sent = drive.keepalive(HOST, port, 10, ms=2, prefix=PREFIX + "after")
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    rc = wait_exit(p)
    err = p._err.text()
    ids = sent_ids(sent)
    recs = at.load_jsonl(reqs2)
    t = {x["request_id"]: x for x in at.load_jsonl(truth)}
    at.check(pre + "exit 0, 10 requests answered", rc == 0 and len(ids) == 10, (rc, len(ids)))
    at.check(pre + "exactly the 10 requests sent, once each",
             sorted(at.record_request_id(r) for r in recs) == sorted(ids),
             [at.record_request_id(r) for r in recs][:12])
    bad = [(at.record_request_id(r), k) for r in recs for k in ("status", "rx_bytes", "tx_bytes")
           if r.get(k) != t.get(at.record_request_id(r), {}).get(k)]
    at.check(pre + "status and bytes equal the server's truth", not bad, bad[:4])
    at.check(pre + "nothing reported lost", "dropped" not in err and "not tracked" not in err
             and "(0 incomplete, 0 still open" in err, err[-400:])


def test_command_orphaned(tmp, port_unused):
    """-- COMMAND, agentprof SIGKILLed: COMMAND stops too, and never runs untraced."""
    pre = "agentprof SIGKILLed with -- COMMAND: "
    port = port_unused
    p = start_ap(["-q", "--", at.CPU_SERVER, "--port", port])
    line = p._err.wait_for(lambda l: l.startswith("agentprof: tracing"), 1)
    try:
        child = int(line.split("(pid ")[1].split(")")[0])
    except (AttributeError, IndexError, ValueError):
        child = None
    listening = at.wait_listening(port, HOST)
    p.kill()
    wait_exit(p)
    deadline = time.monotonic() + 3
    while child and os.path.exists("/proc/%d" % child) and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = child and not os.path.exists("/proc/%d" % child)
    at.check(pre + "premise: COMMAND (pid %s) was serving" % child, child and listening)
    at.check(pre + "COMMAND is gone within 3 s", gone, "pid %s still runs" % child)
    if child and not gone:
        os.kill(child, signal.SIGKILL)

    marker = os.path.join(tmp, "ran")
    p = track(subprocess.Popen([at.AGENTPROF, "record", "-q", "--", "/bin/sh", "-c",
                                "touch %s" % marker], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True))
    time.sleep(0.05)  # loading takes longer: killed before it traces anything
    p.kill()
    err = p.communicate()[1]
    time.sleep(1)
    at.check(pre + "premise: killed before tracing", "agentprof: tracing" not in err, err)
    at.check(pre + "killed before tracing: COMMAND never runs (untraced)",
             not os.path.exists(marker), "it ran")


# 6 ---------------------------------------------------------------------------

def test_disk_full(tmp, srv, port):
    pre = "--requests on a full file system: "
    small = os.path.join(tmp, "small")
    os.mkdir(small)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small]).returncode == 0
    at.check(pre + "premise: a 256 KiB tmpfs mounted", mounted)
    if not mounted:
        return
    reqs, prof = os.path.join(small, "full.jsonl"), os.path.join(tmp, "full.json")
    try:
        p = start_ap(["-q", "-p", srv.pid, "--requests", reqs, "-o", prof])
        load = Load(port)
        said = p._err.wait_for(lambda l: "failed" in l, 60)
        sent = load.end()
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        rc = wait_exit(p)
        err = p._err.text()
        n, problem = jsonl_state(reqs)
        at.check(pre + "agentprof says the write failed and what to do",
                 said is not None and "check the disk" in said and reqs in said, said)
        at.check(pre + "exit 1", rc == 1, "rc %s: %r" % (rc, err[-300:]))
        at.check(pre + "the file holds %d whole lines, every one parses" % n,
                 problem is None and n > 0, problem)
        done = sum(1 for s in sent if not s["error"])
        at.check(pre + "the profile (another disk) counts every request (%d)" % done,
                 profile_requests(prof, srv.pid) == done, profile_requests(prof, srv.pid))
    finally:
        subprocess.run(["umount", small])


def main():
    at.build_cpu_server()
    srv = None
    try:
        with tempfile.TemporaryDirectory(prefix="agentprof-lose-") as tmp:
            truth = os.path.join(tmp, "truth.jsonl")
            srv, port = at.start_server("c", truth)
            track(srv)
            for fn, args in ((test_bad_paths, (tmp, srv)),
                             (test_stop_signals, (tmp, srv, port)),
                             (test_repeated_signals, (tmp, srv, port)),
                             (test_closed_stdout, (tmp, srv, port)),
                             (test_crash, (tmp, srv, port, truth)),
                             (test_command_orphaned, (tmp, fl.free_port())),
                             (test_disk_full, (tmp, srv, port))):
                try:
                    fn(*args)
                except Exception as e:  # one failed check; the rest still run
                    import traceback
                    traceback.print_exc()
                    at.check("%s ran to the end" % fn.__name__, False, repr(e))
    finally:
        if srv:
            at.stop_server(srv)
        cleanup()
    at.report()


if __name__ == "__main__":
    main()
