#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""PostgreSQL over TLS: a private PostgreSQL 15 cluster with ssl=on (its own
port and directory, started and removed here), a libpq client with
sslmode=require, and agentprof reading the plaintext through its libssl
uprobes: round trips exact against what the client ran, statements
fingerprinted, pg.tls true, no literal value anywhere in the output.

The same cluster over its unix socket, from a second server: no port says
PostgreSQL there, the connection's start-up does (and the peer is named by
the socket's path). Also for a connection a third server opens at its
start, traced (`record -- COMMAND`) but for no request, as a pool does:
socket-tracepoint mode sees no connect() of a unix socket."""

import glob
import http.client
import os
import shutil
import socket
import subprocess
import tempfile

import agentprof_test as at

SERVER = os.path.join(at.ROOT, "tests", "servers", "pg_tls_server.py")
PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
SECRET = "271828"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def as_postgres(*cmd):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + list(cmd), check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_cluster(base, port):
    data = os.path.join(base, "data")
    os.makedirs(data)
    shutil.chown(base, "postgres", "postgres")
    shutil.chown(data, "postgres", "postgres")
    as_postgres(os.path.join(PGBIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres")
    as_postgres("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=127.0.0.1", "-keyout", os.path.join(data, "server.key"),
                "-out", os.path.join(data, "server.crt"))
    os.chmod(os.path.join(data, "server.key"), 0o600)
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write("ssl = on\nport = %d\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = '%s'\n" % (port, base))
    as_postgres(os.path.join(PGBIN, "pg_ctl"), "-D", data, "-w", "-l",
                os.path.join(base, "log"), "start")
    return data


def stop_cluster(data):
    subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PGBIN, "pg_ctl"), "-D",
                    data, "-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def get(port, path, rid, conn=None):
    """One request; on conn (kept open) or on a new connection (a new server
    thread, so a new PostgreSQL connection whose TLS handshake is traced)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"X-Request-Id": rid})
    r = c.getresponse()
    r.read()
    if not conn:
        c.close()
    return int(r.getheader("X-PG-Round-Trips")), r.getheader("X-PG-TLS") == "1"


def check_warm(base, pgport):
    """A PostgreSQL connection opened at the server's start, over the unix socket."""
    port = free_port()
    reqs = os.path.join(base, "warm.jsonl")
    prof = os.path.join(base, "warm.json")
    udsn = "host=%s port=%d user=postgres dbname=postgres" % (base, pgport)
    ap = at.start_agentprof(["--pg-port", pgport], reqs, prof,
                            command=[at.PYTHON, SERVER, "--port", port, "--dsn", udsn, "--warm"])
    truth = {}
    try:
        if at.wait_listening(port, timeout=15):
            for i, n in enumerate([3, 2]):
                truth["warm-%d" % i] = get(port, "/warm/%d?n=%d" % (i, n), "warm-%d" % i)
    finally:
        rc, _, err = at.stop_agentprof(ap)
    recs = {(r["headers"] or {}).get("x-request-id"): r for r in at.load_jsonl(reqs)}
    got = {rid: (recs[rid]["pg"]["round_trips"],
                 [u["kind"] for u in recs[rid]["upstream"] or []]) if rid in recs else None
           for rid in truth}
    want = {rid: (n, ["pg"]) for rid, (n, _) in truth.items()}
    at.check("unix socket, connection opened at start for no request: round trips exact, "
             "kind pg", rc == 0 and truth and got == want, (rc, got, want, err[-300:]))


def main():
    base = tempfile.mkdtemp(prefix="agentprof-pgtls-")
    os.chmod(base, 0o755)
    pgport = free_port()
    data = None
    srv = usrv = ap = None
    try:
        data = start_cluster(base, pgport)
        dsn = "host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=require" % pgport
        srv = subprocess.Popen([at.PYTHON, SERVER, "--port", "0", "--dsn", dsn],
                               stdout=subprocess.PIPE, text=True)
        port = int(srv.stdout.readline().split()[1])
        udsn = "host=%s port=%d user=postgres dbname=postgres" % (base, pgport)
        usrv = subprocess.Popen([at.PYTHON, SERVER, "--port", "0", "--dsn", udsn],
                                stdout=subprocess.PIPE, text=True)
        uport = int(usrv.stdout.readline().split()[1])
        # A keep-alive client whose server thread set up TLS before tracing.
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        get(port, "/tls/0?n=1", "warm", kept)
        reqs = os.path.join(base, "r.jsonl")
        prof = os.path.join(base, "p.json")
        ap = at.start_agentprof(["-p", str(srv.pid), "-p", str(usrv.pid), "--pg-port",
                                 str(pgport)], reqs, prof)
        utruth = {}
        for i, n in enumerate([2, 4]):
            utruth["unix-%d" % i] = get(uport, "/tls/%d?n=%d" % (i, n), "unix-%d" % i)
        # One server thread closes its PostgreSQL connection and opens another,
        # which gets the same fd (and, often, the same struct sock).
        ukept = http.client.HTTPConnection("127.0.0.1", uport, timeout=30)
        utruth["unix-kept-0"] = get(uport, "/tls/0?n=1", "unix-kept-0", ukept)
        utruth["unix-reconnect"] = get(uport, "/reconnect/1?n=3", "unix-reconnect", ukept)
        ukept.close()
        usys = at.syscall_tracepoints(ap.pid)
        truth = {}
        for i, n in enumerate([2, 5, 3]):
            truth["tls-%d" % i] = get(port, "/tls/%d?n=%d" % (i, n), "tls-%d" % i)
        for i, n in enumerate([4, 1]):
            truth["kept-%d" % i] = get(port, "/tls/%d?n=%d" % (i, n), "kept-%d" % i, kept)
        kept.close()
        rc, out, err = at.stop_agentprof(ap)
        ap = None
        recs = {(r["headers"] or {}).get("x-request-id"): r for r in at.load_jsonl(reqs)}
        at.check("agentprof exits 0", rc == 0, err[-300:])
        at.check("the client really used TLS", all(t for _, t in truth.values()), truth)
        at.check("every request recorded", set(truth) | set(utruth) <= set(recs), list(recs))
        got = {rid: (recs[rid]["pg"]["round_trips"], recs[rid]["pg"]["tls"],
                     [u["peer"] for u in recs[rid]["upstream"] or [] if u.get("kind") == "pg"])
               for rid in utruth if rid in recs}
        want = {rid: (n, False, ["unix:" + base[:16]]) for rid, (n, _) in utruth.items()}
        at.check("unix socket: round trips exact, not TLS, the peer named by its path "
                 "(also on a connection reopened on the same fd)", got == want, (got, want))
        if at.socket_mode():
            at.check("unix socket: PostgreSQL over it attaches no syscall tracepoint",
                     usys == [], usys)
        bad = [(rid, recs[rid]["pg"]["round_trips"], n) for rid, (n, _) in truth.items()
               if rid in recs and recs[rid]["pg"]["round_trips"] != n]
        at.check("round trips exact over TLS", not bad, bad)
        at.check("pg.tls is true", all(recs[r]["pg"]["tls"] for r in truth if r in recs),
                 [recs[r]["pg"] for r in truth if r in recs][:1])
        # Each statement returns one row. Without bpf_loop the replies are not
        # walked: rows and errors are unknown, null.
        walked = not os.environ.get("AGENTPROF_NO_BPF_LOOP")
        want = {rid: (n, 0) if walked else (None, None) for rid, (n, _) in truth.items()}
        got = {rid: (recs[rid]["pg"]["rows"], recs[rid]["pg"]["errors"]) for rid in truth
               if rid in recs}
        at.check("rows and errors: %s" % ("one row a statement, no error" if walked
                                          else "null (not walked)"),
                 got == want, (got, want))
        fps = sorted({q["fingerprint"] for r in truth if r in recs
                      for q in recs[r]["pg"]["queries"]})
        at.check("statements read in clear through the libssl uprobes",
                 "SELECT $1 + $2" in fps and "(encrypted)" not in fps, fps)
        with open(prof) as f:
            everything = open(reqs).read() + f.read() + out + err
        at.check("no literal value in the output", SECRET not in everything,
                 everything[everything.find(SECRET) - 80:everything.find(SECRET) + 20]
                 if SECRET in everything else "")
        check_warm(base, pgport)
    finally:
        if ap:
            at.stop_agentprof(ap)
        for s in (srv, usrv):
            if s:
                s.terminate()
                s.wait()
        if data:
            stop_cluster(data)
        shutil.rmtree(base, ignore_errors=True)
    at.report()


if __name__ == "__main__":
    main()
