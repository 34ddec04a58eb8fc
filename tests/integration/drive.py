#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Client library and CLI that drive an agentprof test server.

Every request carries a unique X-Request-Id ("<prefix>-<n>") and an
X-Request-Class ("simple" or "complex"); optionally a W3C traceparent. Every
function returns a list of dicts, one per request sent:

  {"request_id", "method", "path", "class", "status", "wall_ns", "ttfb_ns",
   "body_len", "server_cpu_ns", "traceparent", "conn", "error"}

wall_ns / ttfb_ns are client-measured (request start until the body is fully
read / until the response head was parsed); server_cpu_ns is the server's
X-Thread-Cpu-Ns response header (None if absent); "conn" names the client
connection the request used; "error" is None unless the request failed.

CLI:
  drive.py --port N [--host H] [--scenario NAME ...] [--out FILE]
           [--truth FILE] [--prefix P] [--ms N]
Scenarios: keepalive, close, concurrent, stream, post, notfound, all (default).
With --truth, the server's truth file is checked against the requests sent
(every request has exactly one truth line, statuses agree, cpu_ns is near the
requested ms, wall_ns >= cpu_ns); exit status 1 if anything is off.
"""

import argparse
import http.client
import itertools
import json
import os
import sys
import threading
import time

_ids = itertools.count(1)
_ids_lock = threading.Lock()
_conns = itertools.count(1)

DEFAULT_PREFIX = "t%d" % os.getpid()


def next_id(prefix=None):
    with _ids_lock:
        n = next(_ids)
    return "%s-%d" % (prefix or DEFAULT_PREFIX, n)


def traceparent():
    return "00-%s-%s-01" % (os.urandom(16).hex(), os.urandom(8).hex())


def _ms_for(ms, i):
    return ms(i) if callable(ms) else ms


def _cls_for(cls, i):
    return cls(i) if callable(cls) else cls


def _path_id(rid):
    return rid.rsplit("-", 1)[-1]


def cpu_path(rid, ms, after=0):
    """after: ms of CPU the server burns once it has answered."""
    if after:
        return "/cpu/%s?ms=%d&after=%d" % (_path_id(rid), ms, after)
    return "/cpu/%s?ms=%d" % (_path_id(rid), ms)


def pool_path(rid, ms):
    return "/pool/%s?ms=%d" % (_path_id(rid), ms)


def echo_path(rid, ms):
    return "/echo/%s?ms=%d" % (_path_id(rid), ms)


def stream_path(rid, ms, chunks):
    return "/stream/%s?ms=%d&chunks=%d" % (_path_id(rid), ms, chunks)


def request(conn, method, path, rid, cls, body=None, close=False, trace=False, conn_name=None):
    """Sends one request over an http.client connection and reads the response."""
    headers = {"X-Request-Id": rid, "X-Request-Class": cls}
    tp = traceparent() if trace else None
    if tp:
        headers["traceparent"] = tp
    if close:
        headers["Connection"] = "close"
    if body is not None:
        headers["Content-Type"] = "application/octet-stream"
    rec = {
        "request_id": rid,
        "method": method,
        "path": path,
        "class": cls,
        "status": None,
        "wall_ns": None,
        "ttfb_ns": None,
        "body_len": None,
        "server_cpu_ns": None,
        "traceparent": tp,
        "conn": conn_name,
        "error": None,
    }
    t0 = time.monotonic_ns()
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        rec["ttfb_ns"] = time.monotonic_ns() - t0
        data = resp.read()
        rec["wall_ns"] = time.monotonic_ns() - t0
        rec["status"] = resp.status
        rec["body_len"] = len(data)
        cpu = resp.getheader("X-Thread-Cpu-Ns")
        rec["server_cpu_ns"] = int(cpu) if cpu is not None else None
        echoed = resp.getheader("X-Request-Id")
        if echoed != rid:
            rec["error"] = "X-Request-Id echoed as %r" % echoed
    except (OSError, http.client.HTTPException) as e:
        rec["error"] = "%s: %s" % (type(e).__name__, e)
        conn.close()
    return rec


def _new_conn(host, port, timeout):
    return http.client.HTTPConnection(host, port, timeout=timeout), "c%d" % next(_conns)


def keepalive(host, port, n, ms=5, cls="simple", prefix=None, trace=False, timeout=60,
              after=0):
    """n GET /cpu requests one after another over one keep-alive connection;
    after: ms of CPU the server burns after each response (per i, or fixed)."""
    conn, name = _new_conn(host, port, timeout)
    out = []
    try:
        for i in range(n):
            rid = next_id(prefix)
            out.append(
                request(
                    conn,
                    "GET",
                    cpu_path(rid, _ms_for(ms, i), _ms_for(after, i)),
                    rid,
                    _cls_for(cls, i),
                    trace=trace,
                    conn_name=name,
                )
            )
    finally:
        conn.close()
    return out


# Between two jobs handed to a pool thread: long enough for it to be back
# asleep on its queue. A pool thread that finishes a job, is preempted before
# it blocks on the queue, and finds the next job there takes that job without
# a wakeup, and agentprof then keeps it on the last job's request
# (docs/design.md, "Attribution": only work handed over by a wakeup is followed). On 2 vCPUs
# under the suite's load that race takes ~1 job in 4 back to back.
POOL_GAP_S = 0.03


def pool(host, port, n, ms=5, cls="simple", prefix=None, timeout=60, gap_s=POOL_GAP_S):
    """n GET /pool requests (asyncio server: the work runs in its one pool
    thread), one after another, alternating between two keep-alive
    connections: each job is handed to the pool thread while the last
    request, on the other connection, is still open. gap_s apart (POOL_GAP_S)."""
    conns = [_new_conn(host, port, timeout) for _ in range(2)]
    out = []
    try:
        for i in range(n):
            if i:
                time.sleep(gap_s)
            conn, name = conns[i % 2]
            rid = next_id(prefix)
            out.append(request(conn, "GET", pool_path(rid, _ms_for(ms, i)), rid,
                               _cls_for(cls, i), conn_name=name))
    finally:
        for conn, _ in conns:
            conn.close()
    return out


def new_conn_each(host, port, n, ms=5, cls="simple", prefix=None, trace=False, timeout=60):
    """n GET /cpu requests, each on a new connection with Connection: close."""
    out = []
    for i in range(n):
        conn, name = _new_conn(host, port, timeout)
        rid = next_id(prefix)
        try:
            out.append(
                request(
                    conn,
                    "GET",
                    cpu_path(rid, _ms_for(ms, i)),
                    rid,
                    _cls_for(cls, i),
                    close=True,
                    trace=trace,
                    conn_name=name,
                )
            )
        finally:
            conn.close()
    return out


def concurrent(host, port, clients, m, ms=5, cls="simple", prefix=None, trace=False, timeout=120):
    """clients threads, each doing m keep-alive GET /cpu requests at the same time."""
    results = [None] * clients
    barrier = threading.Barrier(clients)

    def worker(k):
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            pass
        results[k] = keepalive(
            host,
            port,
            m,
            ms=(lambda i: _ms_for(ms, k * m + i)),
            cls=(lambda i: _cls_for(cls, k * m + i)),
            prefix=prefix,
            trace=trace,
            timeout=timeout,
        )

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for res in results for r in (res or [])]


def stream(host, port, ms=40, chunks=4, cls="complex", prefix=None, trace=False, timeout=60):
    """One chunked GET /stream request on its own connection."""
    conn, name = _new_conn(host, port, timeout)
    rid = next_id(prefix)
    try:
        return [
            request(
                conn,
                "GET",
                stream_path(rid, ms, chunks),
                rid,
                cls,
                trace=trace,
                conn_name=name,
            )
        ]
    finally:
        conn.close()


def post(host, port, size=64 * 1024, ms=10, cls="complex", prefix=None, trace=False, timeout=60):
    """One POST /echo request with a size-byte body on its own connection."""
    conn, name = _new_conn(host, port, timeout)
    rid = next_id(prefix)
    body = bytes(i & 0xFF for i in range(size))
    try:
        rec = request(
            conn,
            "POST",
            echo_path(rid, ms),
            rid,
            cls,
            body=body,
            trace=trace,
            conn_name=name,
        )
    finally:
        conn.close()
    rec["request_body_len"] = size
    return [rec]


def notfound(host, port, prefix=None, cls="simple", timeout=60):
    """One request to an unknown path (expects 404)."""
    conn, name = _new_conn(host, port, timeout)
    rid = next_id(prefix)
    try:
        return [request(conn, "GET", "/nope/%s" % _path_id(rid), rid, cls, conn_name=name)]
    finally:
        conn.close()


def query_ms(path, key):
    """A request path's key= query value (0 if absent)."""
    for kv in path.partition("?")[2].split("&"):
        k, _, v = kv.partition("=")
        if k == key:
            return int(v)
    return 0


def requested_ms(path):
    """The CPU ms a request path asks for: ms= plus after=."""
    return query_ms(path, "ms") + query_ms(path, "after")


def check_truth(sent, truth, cpu_tol_ms=3.0, cpu_rel=0.25):
    """Checks server truth lines against the requests sent; returns a list of problems."""
    problems = []
    by_id = {}
    for t in truth:
        by_id.setdefault(t.get("request_id"), []).append(t)
    for s in sent:
        rid = s["request_id"]
        if s.get("error"):
            problems.append("%s: client error %s" % (rid, s["error"]))
        lines = by_id.get(rid, [])
        if len(lines) != 1:
            problems.append("%s: %d truth lines" % (rid, len(lines)))
            continue
        t = lines[0]
        if t["status"] != s["status"]:
            problems.append("%s: status truth %s sent %s" % (rid, t["status"], s["status"]))
        if t["path"] != s["path"] or t["method"] != s["method"]:
            problems.append(
                "%s: %s %s vs %s %s" % (rid, t["method"], t["path"], s["method"], s["path"])
            )
        # own_cpu_ns (asyncio server) leaves out the event loop's recv()/send()
        # work, which cpu_ns includes when the request was alone on the loop
        own = t.get("own_cpu_ns", t["cpu_ns"])
        want = requested_ms(s["path"]) * 1e6 if t["status"] == 200 else 0
        tol = max(cpu_tol_ms * 1e6, cpu_rel * want)
        if not (want <= own <= want + tol):
            problems.append("%s: own cpu_ns %d, wanted %d..%d" % (rid, own, want, want + tol))
        if t["cpu_ns"] < own:
            problems.append("%s: cpu_ns %d < own_cpu_ns %d" % (rid, t["cpu_ns"], own))
        if t["wall_ns"] < t["cpu_ns"]:
            problems.append("%s: wall_ns %d < cpu_ns %d" % (rid, t["wall_ns"], t["cpu_ns"]))
        # (client wall may be < server wall_ns: the server stops its clock after write() returns)
        if s["wall_ns"] is not None and s["wall_ns"] < (t.get("ttfb_ns") or 0):
            problems.append(
                "%s: client wall %d < server ttfb %d" % (rid, s["wall_ns"], t["ttfb_ns"])
            )
        if t.get("ttfb_ns") is None or t["ttfb_ns"] > t["wall_ns"]:
            problems.append("%s: bad ttfb_ns %s" % (rid, t.get("ttfb_ns")))
        if s.get("server_cpu_ns") is None or s["server_cpu_ns"] > own:
            problems.append(
                "%s: X-Thread-Cpu-Ns %s > cpu_ns %d" % (rid, s.get("server_cpu_ns"), own)
            )
    return problems


def run_scenarios(host, port, names, ms=5, prefix=None, trace=False):
    out = []
    for name in names:
        if name == "keepalive":
            out += keepalive(host, port, 10, ms=ms, prefix=prefix, trace=trace)
        elif name == "close":
            out += new_conn_each(host, port, 10, ms=ms, prefix=prefix, trace=trace)
        elif name == "concurrent":
            out += concurrent(host, port, 4, 5, ms=ms, prefix=prefix, trace=trace)
        elif name == "stream":
            out += stream(host, port, ms=8 * ms, chunks=4, prefix=prefix, trace=trace)
        elif name == "post":
            out += post(host, port, ms=2 * ms, prefix=prefix, trace=trace)
        elif name == "notfound":
            out += notfound(host, port, prefix=prefix)
        else:
            raise ValueError("unknown scenario %r" % name)
    return out


ALL = ["keepalive", "close", "concurrent", "stream", "post", "notfound"]


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description="drive an agentprof test server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--scenario", action="append", choices=ALL + ["all"])
    ap.add_argument("--ms", type=int, default=5, help="base CPU burn per request")
    ap.add_argument("--prefix", help="request id prefix (default t<pid>)")
    ap.add_argument("--traceparent", action="store_true", help="send W3C traceparent")
    ap.add_argument("--out", help="write the requests sent as JSON lines")
    ap.add_argument("--truth", help="server truth file to check against")
    args = ap.parse_args()

    names = args.scenario or ["all"]
    if "all" in names:
        names = ALL
    sent = run_scenarios(args.host, args.port, names, args.ms, args.prefix, args.traceparent)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for r in sent:
                f.write(json.dumps(r) + "\n")
    errors = [r for r in sent if r["error"]]
    print("sent %d requests, %d errors" % (len(sent), len(errors)))
    for r in errors:
        print("error: %s %s" % (r["request_id"], r["error"]))
    if args.truth:
        time.sleep(0.2)  # let the server flush its last truth lines
        problems = check_truth(sent, load_jsonl(args.truth))
        for p in problems:
            print("truth: " + p)
        print("truth check: %s" % ("ok" if not problems else "%d problems" % len(problems)))
        if problems:
            return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
