#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""What `agentprof export` costs the node it runs on (bench/README.md, "export").

1. CPU and RSS: the exporter traces build/bench/tiny_server while a paced
   client sends RATE requests a second over 4 keep-alive connections, and
   /metrics is scraped every SCRAPE seconds; the exporter's CPU (utime +
   stime from /proc over the window, as % of one core) and RSS (VmRSS at
   the end, VmHWM) are reported. With --soak, RSS is sampled every minute
   too and its spread reported (the issue's target: flat within 5%).
2. Scrape time: the C test server gets one request on each of enough
   distinct routes for /metrics to hold at least SERIES series; the
   median and max wall time of 20 scrapes are reported.

Usage: bench/export.py [--seconds 60] [--rate 1000] [--scrape 15] [--series 10000]
                       [--soak] [--port-base 19150]      (root; after `make`)
"""

import argparse
import os
import random
import signal
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
AGENTPROF = os.path.join(ROOT, "build", "agentprof")
TINY = os.path.join(ROOT, "build", "bench", "tiny_server")
CPU_SERVER = os.path.join(ROOT, "build", "tests", "cpu_server")
TICK = os.sysconf("SC_CLK_TCK")


def start(cmd, wait_prefix, stream="stdout", timeout=60):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    pipe = p.stdout if stream == "stdout" else p.stderr
    while time.monotonic() < deadline:
        line = pipe.readline()
        if not line:
            break
        if line.startswith(wait_prefix):
            threading.Thread(target=lambda: [None for _ in pipe], daemon=True).start()
            return p, line
    p.kill()
    raise RuntimeError("%s did not start: %s" % (cmd[0], p.stderr.read()[-1000:]))


def stop(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def scrape(port):
    t0 = time.perf_counter()
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def paced_client(port, rate, stop_at, counts, k):
    """rate requests a second on one keep-alive connection, paced by the clock."""
    s = socket.create_connection(("127.0.0.1", port))
    req = b"GET /x/%d HTTP/1.1\r\nHost: b\r\n\r\n" % k
    period = 1.0 / rate
    nxt = time.monotonic()
    buf = b""
    while time.monotonic() < stop_at:
        s.sendall(req)
        while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < 2:
            chunk = s.recv(4096)
            if not chunk:
                return
            buf += chunk
        buf = buf.split(b"\r\n\r\n", 1)[1][2:]
        counts[k] += 1
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    s.close()


def bench_cpu(args):
    srv, line = start([TINY, "-p", "0"], "listening")
    port = int(line.split()[1])
    ex = None
    try:
        ex, _ = start([AGENTPROF, "export", "-p", str(srv.pid), "--listen",
                       "127.0.0.1:%d" % args.port_base], "agentprof: exporting", "stderr")
        conns = 4
        counts = [0] * conns
        t0 = time.monotonic()
        stop_at = t0 + args.seconds
        ticks0 = cpu_ticks(ex.pid)
        threads = [threading.Thread(target=paced_client,
                                    args=(port, args.rate / conns, stop_at, counts, k))
                   for k in range(conns)]
        for t in threads:
            t.start()
        rss = []
        next_scrape = t0 + args.scrape
        next_rss = t0 + 60
        while time.monotonic() < stop_at:
            now = time.monotonic()
            if now >= next_scrape:
                scrape(args.port_base)
                next_scrape += args.scrape
            if now >= next_rss:
                rss.append(status_kb(ex.pid, "VmRSS"))
                next_rss += 60
            time.sleep(0.05)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        ticks = cpu_ticks(ex.pid) - ticks0
        _, body = scrape(args.port_base)
        counted = sum(float(l.rsplit(" ", 1)[1]) for l in body.decode().splitlines()
                      if l.startswith("http_server_request_duration_seconds_count"))
        out = {
            "requests_sent": sum(counts),
            "requests_counted": counted,
            "rate_per_s": sum(counts) / elapsed,
            "seconds": elapsed,
            "exporter_cpu_pct_of_core": 100.0 * ticks / TICK / elapsed,
            "exporter_rss_mb": status_kb(ex.pid, "VmRSS") / 1024,
            "exporter_hwm_mb": status_kb(ex.pid, "VmHWM") / 1024,
        }
        if rss:
            out["rss_samples_mb"] = [round(r / 1024, 2) for r in rss]
            out["rss_spread_pct"] = 100.0 * (max(rss) - min(rss)) / min(rss)
        return out
    finally:
        stop(ex)
        stop(srv)


def bench_scrape(args):
    srv, line = start([CPU_SERVER, "--port", "0"], "listening")
    port = int(line.split()[1])
    ex = None
    rng = random.Random(1)
    try:
        ex, _ = start([AGENTPROF, "export", "-p", str(srv.pid), "--listen",
                       "127.0.0.1:%d" % (args.port_base + 1), "--max-routes", "100000",
                       "--max-services", "100000", "--max-groups", "100000"], "agentprof: exporting", "stderr")
        nseries = 0
        routes = 0
        while nseries < args.series:
            s = socket.create_connection(("127.0.0.1", port))
            f = s.makefile("rb")
            for _ in range(50):
                path = "/%s/%s" % ("".join(rng.choice(string.ascii_lowercase) for _ in range(8)),
                                   "".join(rng.choice(string.ascii_lowercase) for _ in range(6)))
                s.sendall(b"GET %s?ms=0 HTTP/1.1\r\nHost: b\r\n\r\n" % path.encode())
                length = 0
                while True:
                    h = f.readline()
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                    if h in (b"\r\n", b""):
                        break
                f.read(length)
                routes += 1
            s.close()
            time.sleep(0.3)
            _, body = scrape(args.port_base + 1)
            nseries = sum(1 for l in body.decode().splitlines() if l and not l.startswith("#"))
        times = [scrape(args.port_base + 1)[0] for _ in range(20)]
        return {"routes": routes, "series": nseries, "bytes": len(body),
                "scrape_ms_median": 1000 * statistics.median(times),
                "scrape_ms_max": 1000 * max(times),
                "exporter_rss_mb": status_kb(ex.pid, "VmRSS") / 1024}
    finally:
        stop(ex)
        stop(srv)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--scrape", type=float, default=15)
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--soak", action="store_true", help="30 minutes, RSS every minute")
    ap.add_argument("--port-base", type=int, default=19150)
    args = ap.parse_args()
    if args.soak:
        args.seconds = 1800
    if os.geteuid() != 0:
        sys.exit("bench/export.py: needs root (BPF)")
    for path in (AGENTPROF, TINY, CPU_SERVER):
        if not os.access(path, os.X_OK):
            sys.exit("bench/export.py: %s missing: run make (and make build/bench/tiny_server)"
                     % path)
    cpu = bench_cpu(args)
    print("export at %.0f req/s for %.0f s, a scrape every %.0f s: exporter CPU %.2f%% of a "
          "core, RSS %.1f MB (peak %.1f MB); %d requests sent, %d counted" % (
              cpu["rate_per_s"], cpu["seconds"], args.scrape, cpu["exporter_cpu_pct_of_core"],
              cpu["exporter_rss_mb"], cpu["exporter_hwm_mb"], cpu["requests_sent"],
              cpu["requests_counted"]))
    if "rss_spread_pct" in cpu:
        print("RSS every minute (MB): %s; spread %.1f%%" % (cpu["rss_samples_mb"],
                                                            cpu["rss_spread_pct"]))
    if args.soak:
        return
    sc = bench_scrape(args)
    print("scrape of %d series (%d routes, %d bytes): median %.1f ms, max %.1f ms; exporter "
          "RSS %.1f MB" % (sc["series"], sc["routes"], sc["bytes"], sc["scrape_ms_median"],
                           sc["scrape_ms_max"], sc["exporter_rss_mb"]))


if __name__ == "__main__":
    main()
