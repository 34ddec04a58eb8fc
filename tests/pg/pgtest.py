#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Shared pieces of the PostgreSQL tests (tests/pg/ and test_pg.py).

- The test role and database (agentprof_test/agentprof_test, password
  agentprof_test), created idempotently through `su postgres -c psql`.
- Unique literal values: numbers 31337000.. and 'secret-<hex>' strings, so the
  tests can look for every literal a server sent in agentprof's output.
- CountingProxy: a TCP forwarder to PostgreSQL that parses the protocol in
  both directions and counts ReadyForQuery messages (minus the one closing the
  start-up), DataRows and ErrorResponses. It is an oracle independent of the
  test servers' own bookkeeping: the servers' self-test runs them through it.
"""

import contextlib
import itertools
import os
import socket
import struct
import subprocess
import tempfile
import threading

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "agentprof_test"
PG_PASSWORD = "agentprof_test"
PG_DB = "agentprof_test"

LITERAL_BASE = 31337000
_literals = itertools.count(LITERAL_BASE + 1)
_lit_lock = threading.Lock()


def dsn(port=PG_PORT, host=PG_HOST):
    """A libpq connection string; TLS and GSS encryption off (wire in the clear)."""
    return ("host=%s port=%d dbname=%s user=%s password=%s sslmode=disable "
            "gssencmode=disable application_name=agentprof_test" % (
                host, port, PG_DB, PG_USER, PG_PASSWORD))


def literal():
    """A number literal no other statement of this process uses (31337001, ...)."""
    with _lit_lock:
        return next(_literals)


def secret():
    """A string literal that must never reach agentprof's output."""
    return "secret-" + os.urandom(6).hex()


def _psql(sql):
    r = subprocess.run(["su", "postgres", "-c", "psql -qAtX -v ON_ERROR_STOP=1 -c \"%s\"" % sql],
                       capture_output=True, text=True, cwd="/")
    if r.returncode:
        raise RuntimeError("psql %r failed: %s" % (sql, r.stderr.strip()))
    return r.stdout


def setup_db():
    """Creates the test role and database unless they exist (needs root)."""
    if _psql("SELECT 1 FROM pg_roles WHERE rolname = '%s'" % PG_USER).strip() != "1":
        _psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PG_USER, PG_PASSWORD))
    if _psql("SELECT 1 FROM pg_database WHERE datname = '%s'" % PG_DB).strip() != "1":
        _psql("CREATE DATABASE %s OWNER %s" % (PG_DB, PG_USER))


def pg_running():
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    return any(l.split()[:2] == ["15", "main"] and "online" in l for l in out.splitlines())


@contextlib.contextmanager
def running():
    """PostgreSQL 15/main up for the block, then as found: started if it was
    down (with a private state dir, so that only what this started is
    stopped), stopped again after."""
    started = None
    services = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "tools", "services.sh")
    if not pg_running():
        started = tempfile.mkdtemp(prefix="agentprof-pg-state-")
        subprocess.run([services, "start"], check=True,
                       env=dict(os.environ, AGENTPROF_STATE=started))
    try:
        yield
    finally:
        if started:
            subprocess.run([services, "stop"], env=dict(os.environ, AGENTPROF_STATE=started))


class _Parser:
    """Splits one direction of a PostgreSQL stream into (type, body) messages."""

    def __init__(self, startup):
        self.buf = b""
        self.startup = startup  # the client's first message has no type byte

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            if self.startup:
                if len(self.buf) < 4:
                    break
                n = struct.unpack("!I", self.buf[:4])[0]
                if len(self.buf) < n:
                    break
                out.append((None, self.buf[4:n]))
                self.buf = self.buf[n:]
                self.startup = False
                continue
            if len(self.buf) < 5:
                break
            t = self.buf[:1]
            n = struct.unpack("!I", self.buf[1:5])[0]
            if len(self.buf) < 1 + n:
                break
            out.append((t, self.buf[5:1 + n]))
            self.buf = self.buf[1 + n:]
        return out


class CountingProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL and counts protocol messages.

    counts(): {"round_trips", "rows", "errors", "syncs"} over all connections;
    round_trips are ReadyForQuery messages except the one ending each start-up.
    """

    def __init__(self, upstream_port=PG_PORT):
        self.upstream = (PG_HOST, upstream_port)
        self.lock = threading.Lock()
        self.c = {"round_trips": 0, "rows": 0, "errors": 0, "syncs": 0}
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((PG_HOST, 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def counts(self):
        with self.lock:
            return dict(self.c)

    def close(self):
        self.closed = True
        self.lsock.close()

    def _accept(self):
        while not self.closed:
            try:
                cs, _ = self.lsock.accept()
            except OSError:
                return
            ss = socket.create_connection(self.upstream)
            state = {"started": False}
            threading.Thread(target=self._pump, args=(cs, ss, True, state), daemon=True).start()
            threading.Thread(target=self._pump, args=(ss, cs, False, state), daemon=True).start()

    def _pump(self, src, dst, client, state):
        parser = _Parser(startup=client)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                # count before forwarding: the peer cannot act on it earlier
                with self.lock:
                    for t, _ in parser.feed(data):
                        if client:
                            if t in (b"S", b"Q", b"F"):
                                self.c["syncs"] += 1
                        elif t == b"Z":
                            if state["started"]:
                                self.c["round_trips"] += 1
                            state["started"] = True
                        elif t == b"D":
                            self.c["rows"] += 1
                        elif t == b"E":
                            self.c["errors"] += 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            src.close()


def get(conn, path, rid, close=False):
    """GET over an http.client connection; returns a dict with status, the
    X-PG-Round-Trips header (int or None), the body and an error (or None)."""
    import http.client
    headers = {"X-Request-Id": rid}
    if close:
        headers["Connection"] = "close"
    rec = {"request_id": rid, "path": path, "status": None, "round_trips": None,
           "body": None, "error": None}
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        rec["body"] = resp.read()
        rec["status"] = resp.status
        rt = resp.getheader("X-PG-Round-Trips")
        rec["round_trips"] = int(rt) if rt is not None else None
        if resp.getheader("X-Request-Id") != rid:
            rec["error"] = "X-Request-Id echoed as %r" % resp.getheader("X-Request-Id")
    except (OSError, http.client.HTTPException) as e:
        rec["error"] = "%s: %s" % (type(e).__name__, e)
        conn.close()
    return rec


def spawn(cmd, timeout=15, cwd=None, env=None):
    """Starts a server that prints "listening PORT"; returns (Popen, port)."""
    import time
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env)
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line or line.startswith("listening "):
            break
    if not line.startswith("listening "):
        p.kill()
        p.wait()
        raise RuntimeError("%s did not start (%r)" % (cmd, line))
    return p, int(line.split()[1])


def terminate_when_running(query_prefix, timeout=10):
    """Waits until a backend of the test role runs a statement starting with
    query_prefix, then pg_terminate_backend()s it. Returns the pid or None."""
    import time
    import psycopg2
    c = psycopg2.connect(dsn())
    c.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        with c.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s AND "
                            "state = 'active' AND pid <> pg_backend_pid() AND "
                            "starts_with(query, %s)", (PG_USER, query_prefix))
                r = cur.fetchone()
                if r:
                    time.sleep(0.2)  # well inside the statement
                    cur.execute("SELECT pg_terminate_backend(%s)", (r[0],))
                    return r[0]
                time.sleep(0.02)
    finally:
        c.close()
    return None
