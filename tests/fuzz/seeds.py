#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Writes the fuzz targets' seed corpora into DIR/<target>/, from the test
suites: the C string literals of the unit tests (HTTP heads and targets, SQL
statements), those statements as PostgreSQL Query and Parse/Bind/Sync
captures, and profiles in the format profile.c writes.

Usage: seeds.py DIR
"""

import json
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'", "0": b"\0",
           "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "?": b"?"}


def unescape(body):
    out, i = bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            out.append(int(m.group(0), 16))
            i += 2 + len(m.group(0))
        elif nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(int(m.group(0), 8) & 0xff)
            i += 1 + len(m.group(0))
        else:
            out += ESCAPES.get(nxt, nxt.encode())
            i += 2
    return bytes(out)


def c_strings(path):
    """Every string literal of a C file, adjacent ones joined as the compiler does."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        src = f.read()
    out, prev_end, cur = [], None, None
    for m in LITERAL.finditer(src):
        if cur is not None and src[prev_end:m.start()].strip() == "":
            cur += unescape(m.group(1))
        else:
            if cur is not None:
                out.append(cur)
            cur = unescape(m.group(1))
        prev_end = m.end()
    if cur is not None:
        out.append(cur)
    return [s for s in out if len(s) > 1]


def be32(n):
    return struct.pack(">I", n)


def query(sql):
    return b"Q" + be32(len(sql) + 5) + sql + b"\0"


def parse_bind_sync(name, sql):
    p = name + b"\0" + sql + b"\0" + b"\0\0"
    b = b"\0" + name + b"\0" + b"\0\0\0\0\0\0"
    return b"P" + be32(len(p) + 4) + p + b"B" + be32(len(b) + 4) + b + b"S" + be32(4)


def pg_record(conn, flags, seq, req, capture):
    capture = capture[:512]
    return bytes([conn | flags << 2, seq | req << 3, len(capture) & 0xff,
                  len(capture) >> 8]) + capture


def hist(values):
    buckets = {}
    for v in values:
        buckets[v if v < 32 else 32 + (v.bit_length() - 6) * 32 + (v >> (v.bit_length() - 6)
                                                                   & 31)] = 1
    return {"count": len(values), "sum": sum(values), "min": min(values), "max": max(values),
            "mean": sum(values) // len(values), "p50": sorted(values)[len(values) // 2],
            "p90": max(values), "p95": max(values), "p99": max(values),
            "buckets": sorted([[k, c] for k, c in buckets.items()])}


def profile(groups):
    run = {k: 0 for k in ("start_ns", "end_ns", "records", "malformed_heads", "oversized_heads",
                          "incomplete", "ringbuf_drops", "requests_map_full", "conns_map_full",
                          "threads_map_full", "procs_map_full", "non_http_reads",
                          "stale_bindings", "flushed", "mapped_bytes_measured",
                          "sample_every", "unsampled")}
    run["sample_every"] = 1
    return {"format": "agentprof-profile", "version": 1,
            "histogram": {"kind": "log-linear", "sub_bits": 5}, "run": run,
            "groups": [{"service": svc, "method": m, "route": r, "class": c,
                        "requests": len(vals), "incomplete": 0, "status_5xx": 0,
                        "metrics": {"duration_ns": hist(vals), "cpu_ns": hist(vals[:1]),
                                    "rx_bytes": hist([7, 300])}}
                       for svc, m, r, c, vals in groups],
            "peers": [], "statements": []}


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    out = sys.argv[1]
    http = c_strings("tests/unit/test_http.c") + c_strings("tests/unit/test_route.c")
    for i, s in enumerate(http):
        write(os.path.join(out, "http"), "unit-%03d" % i, b"\xff" + s)
    sql = c_strings("tests/unit/test_fingerprint.c")
    for i, s in enumerate(sql):
        write(os.path.join(out, "fingerprint"), "unit-%03d" % i, b"\x40" + s)
    for i, s in enumerate(sql):
        recs = pg_record(i & 3, 0, 0, 1 + i % 7, query(s))
        recs += pg_record(i & 3, 0, 0, 1 + i % 7, parse_bind_sync(b"s%d" % i, s))
        recs += pg_record(i & 3, 0, 1, 1 + i % 7, query(s) + parse_bind_sync(b"", s))
        write(os.path.join(out, "pg"), "unit-%03d" % i, bytes([i & 1]) + recs)
    profiles = [profile([("python3", "GET", "/cpu/:id", "simple", [5000000, 7000000, 12])]),
                profile([("uvicorn", "POST", "/agent/query", "complex", [1, 31, 32, 2**40]),
                         ("node", "GET", "/", "", [100])]),
                profile([])]
    for i, p in enumerate(profiles):
        write(os.path.join(out, "profile"), "format-%d.json" % i, json.dumps(p, indent=1).encode())


if __name__ == "__main__":
    main()
