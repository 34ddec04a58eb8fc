#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: `agentprof export` scraped by a real Prometheus (Debian's
`prometheus`, every second) while the C test server runs a known workload.

- PromQL over the scraped series gives the exact request count per route and
  class, and CPU sums within test_record.py's bounds of the server's own
  truth (thread-per-request: 5% or 1 ms a request). Prometheus 2.42 asks
  for OpenMetrics first: its own parser reads that format here.
- `promtool check metrics` on a live scrape is clean, in both formats.
- /profile is the agentprof-profile document `record -o` writes; /healthz and
  /readyz answer.
- On the asyncio server: the CPython runtime reader engaged, CPU per request
  within test_record's event-loop bounds.
- Per route and peer, calls and wait against the upstream app server's own
  clock (tests/upstream, as test_upstream.py).
- A route-cardinality attack (random paths) keeps the series within the caps,
  and the overflow counter counts what went to (other).
- Without -p: a server started after the exporter is picked up at the next
  rescan, and its series leave /metrics --forget seconds after it exits.
- Under exactly the DaemonSet's capabilities (setpriv) it runs and counts
  requests; with any one of them fewer it fails naming that capability.

The servers run in cgroups named like systemd units, so their service_name
is the unit's (README "Service identity").

Usage: test_export.py   (root)
"""

import json
import os
import random
import shutil
import string
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import agentprof_test as at
import drive

HOST = "127.0.0.1"
PROM_PORT = 19110
EXPORT_PORT = 19120
LATE_EXPORT_PORT = 19121
CAPS_EXPORT_PORT = 19122
# The DaemonSet's capability set (deploy/daemonset.yaml).
DAEMONSET_CAPS = ["bpf", "perfmon", "sys_ptrace"]
MAX_ROUTES = 12
COSTS = [5, 20]


def http_get(url, accept=None, timeout=10):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def start_export(args, port, timeout=None, prefix=()):
    cmd = list(prefix) + [at.AGENTPROF, "export", "--listen", "%s:%d" % (HOST, port)] + args
    return at.start_and_wait(cmd, "agentprof: exporting", timeout or at.START_TIMEOUT_S)


def unit_cgroup(name):
    path = os.path.join(at.cgroup2_mount(), name)
    os.makedirs(path, exist_ok=True)
    return path


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a text-format scrape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        if "{" in head:
            name, rest = head.split("{", 1)
            labels = {}
            for part in _split_labels(rest[:-1]):
                k, v = part.split("=", 1)
                labels[k] = json.loads(v)
        else:
            name, labels = head, {}
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def _split_labels(s):
    parts, cur, quoted, esc = [], "", False, False
    for ch in s:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            cur += ch
            esc = True
        elif ch == '"':
            cur += ch
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def series(metrics, name, **want):
    return {dict(k[1]).get("http_route", ""): v for k, v in metrics.items()
            if k[0] == name and all(dict(k[1]).get(a) == b for a, b in want.items())}


class Prometheus:
    def __init__(self, tmp, target_port):
        self.dir = os.path.join(tmp, "prometheus")
        os.makedirs(self.dir)
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "scrape_configs:\n  - job_name: agentprof\n    honor_labels: true\n"
                    "    static_configs:\n      - targets: ['%s:%d']\n" % (HOST, target_port))
        self.p = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + self.dir + "/data",
             "--web.listen-address=%s:%d" % (HOST, PROM_PORT), "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http_get("http://%s:%d/-/ready" % (HOST, PROM_PORT), timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready: %s" % open(
            os.path.join(self.dir, "log")).read()[-2000:])

    def query(self, q):
        url = "http://%s:%d/api/v1/query?%s" % (HOST, PROM_PORT,
                                                 urllib.parse.urlencode({"query": q}))
        status, _, body = http_get(url)
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise RuntimeError("PromQL %s: %s" % (q, body[:500]))
        return doc["data"]["result"]

    def wait_value(self, q, want, timeout=15):
        """The query's single value once it equals want (scrapes lag), or the last seen."""
        deadline = time.monotonic() + timeout
        val = None
        while time.monotonic() < deadline:
            res = self.query(q)
            val = float(res[0]["value"][1]) if res else None
            if val == want:
                return val
            time.sleep(0.5)
        return val

    def stop(self):
        at.stop_server(self.p)


def workload(port):
    sent = drive.keepalive(HOST, port, 12, ms=lambda i: COSTS[i % 2],
                           cls=lambda i: "simple" if i % 2 else "complex")
    sent += drive.new_conn_each(HOST, port, 6, ms=5, cls="simple")
    sent += drive.concurrent(HOST, port, 4, 4, ms=lambda i: COSTS[i % 2], cls="moderate")
    sent += drive.stream(HOST, port, ms=40, chunks=4)
    sent += drive.notfound(HOST, port)
    return sent


def truth_by_route(truth):
    out = {}
    for t in truth:
        path = t["path"].split("?")[0]
        route = "/" + path.split("/")[1] + "/:id"
        k = (route, t.get("class") or "")
        c = out.setdefault(k, {"n": 0, "cpu_ns": 0, "bound_ns": 0})
        c["n"] += 1
        c["cpu_ns"] += t["cpu_ns"]
        c["bound_ns"] += max(0.05 * t["cpu_ns"], 1_000_000)
    return out


def check_scrape(prom, srv, port, service, truth_path, sent):
    pre = "scrape: "
    deadline = time.monotonic() + 5
    while True:  # the server writes a truth line once its response is out
        truth = at.load_truth(truth_path)
        if len(truth) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    at.check(pre + "client saw no errors", not [s for s in sent if s["error"]],
             [s["error"] for s in sent if s["error"]][:3])
    at.check(pre + "one truth line per request", len(truth) == len(sent),
             "%d truth, %d sent" % (len(truth), len(sent)))
    cls_of = {s["request_id"]: s["class"] for s in sent}
    for t in truth:
        t["class"] = cls_of.get(t["request_id"], "")
    want = truth_by_route(truth)
    sel = 'service_name="%s"' % service
    total = prom.wait_value("sum(http_server_request_duration_seconds_count{%s})" % sel,
                            float(len(sent)))
    at.check(pre + "PromQL: total request count is exact", total == len(sent),
             "%s in Prometheus, %d sent" % (total, len(sent)))
    res = prom.query("sum by (http_route, request_class) "
                     "(http_server_request_duration_seconds_count{%s})" % sel)
    got = {(r["metric"].get("http_route"), r["metric"].get("request_class", "")):
           float(r["value"][1]) for r in res}
    at.check(pre + "PromQL: request count per route and class is exact",
             got == {k: float(v["n"]) for k, v in want.items()},
             "prometheus %s, truth %s" % (sorted(got.items()),
                                          sorted((k, v["n"]) for k, v in want.items())))
    res = prom.query("sum by (http_route, request_class) "
                     "(agentprof_request_cpu_seconds_sum{%s})" % sel)
    cpu = {(r["metric"].get("http_route"), r["metric"].get("request_class", "")):
           float(r["value"][1]) * 1e9 for r in res}
    bad = [(k, cpu.get(k), v["cpu_ns"]) for k, v in want.items()
           if abs(cpu.get(k, 0) - v["cpu_ns"]) > v["bound_ns"]]
    at.check(pre + "PromQL: CPU sum per route and class within 5% or 1 ms a request", not bad,
             bad[:4])
    res = prom.query('sum(agentprof_request_cpu_seconds_bucket{%s,le="0.01"})' % sel)
    below = float(res[0]["value"][1]) if res else -1
    want_below = sum(1 for t in truth if t["cpu_ns"] < 0.0097e9)
    at.check(pre + "PromQL: CPU histogram bucket le=0.01 counts the requests under 10 ms",
             abs(below - want_below) <= 1, "%s in bucket, %d in truth" % (below, want_below))
    res = prom.query('http_server_request_duration_seconds_count{%s,http_route="/nope/:id"}'
                     % sel)
    codes = {r["metric"].get("http_response_status_code") for r in res}
    at.check(pre + "http_response_status_code from the response", codes == {"404"}, codes)


def check_endpoints(port, service, nsent):
    pre = "endpoints: "
    base = "http://%s:%d" % (HOST, port)
    status, ctype, body = http_get(base + "/metrics")
    at.check(pre + "/metrics is text 0.0.4", status == 200 and "version=0.0.4" in ctype,
             (status, ctype))
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True)
    at.check(pre + "promtool check metrics: clean", lint.returncode == 0 and
             not lint.stdout.strip() and not lint.stderr.strip(),
             (lint.returncode, lint.stdout[:500], lint.stderr[:500]))
    status, ctype, om = http_get(base + "/metrics", accept="application/openmetrics-text; "
                                 "version=1.0.0,text/plain;version=0.0.4;q=0.5")
    at.check(pre + "OpenMetrics when asked: content type and # EOF",
             status == 200 and ctype.startswith("application/openmetrics-text") and
             om.endswith("# EOF\n"), (status, ctype, om[-40:]))
    at.check(pre + "OpenMetrics: counter families without _total",
             "# TYPE agentprof_request_runq_seconds counter" in om, "")
    status, ctype, body = http_get(base + "/profile")
    doc = json.loads(body) if status == 200 else {}
    groups = [g for g in doc.get("groups", []) if g.get("service") == service]
    at.check(pre + "/profile is an agentprof-profile, version 1, with the run",
             doc.get("format") == "agentprof-profile" and doc.get("version") == 1 and
             "run" in doc and "peers" in doc and "statements" in doc, list(doc)[:8])
    at.check(pre + "/profile groups count every request, split by status",
             sum(g["requests"] for g in groups) == nsent and all("status" in g for g in groups),
             "%d in groups, %d sent" % (sum(g.get("requests", 0) for g in groups), nsent))
    at.check(pre + "/healthz and /readyz answer 200",
             http_get(base + "/healthz")[0] == 200 and http_get(base + "/readyz")[0] == 200,
             http_get(base + "/healthz")[2])
    at.check(pre + "an unknown path is 404", http_get(base + "/nope")[0] == 404, "")


def check_sampled(srv, port, exp_port, service):
    """RSS and requests in flight per service, sampled (--sample-interval 1)."""
    pre = "sampled: "
    import threading
    base = "http://%s:%d" % (HOST, exp_port)
    box = {}
    t = threading.Thread(target=lambda: box.update(r=drive.stream(HOST, port, ms=2500,
                                                                   chunks=5)))
    t.start()
    time.sleep(1.6)  # a sample falls while the 2.5 s request is open
    m = parse_metrics(http_get(base + "/metrics")[2])
    with open("/proc/%d/statm" % srv.pid) as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    t.join()
    sel = frozenset({("service_name", service)})
    inflight = m.get(("agentprof_service_requests_in_flight", sel))
    got_rss = m.get(("agentprof_service_resident_memory_bytes", sel))
    at.check(pre + "one request in flight while a streamed response is open", inflight == 1,
             inflight)
    at.check(pre + "service RSS within 10% of the server's own /proc statm",
             got_rss is not None and abs(got_rss - rss) <= 0.1 * rss, (got_rss, rss))
    at.check(pre + "one process", m.get(("agentprof_service_processes", sel)) == 1, "")
    return box.get("r", [])


def check_profile_samples(srv, exp_port, service):
    """/profile carries the service's samples over time, as record's profile
    does, for plan's memory fit: after check_sampled's streamed request."""
    pre = "/profile samples: "
    # The streamed request is in the samples once its record is drained
    # (the ring buffer is read every 10 to 100 ms) and the interval it ends
    # in has closed.
    deadline = time.time() + 5
    while True:
        status, _, body = http_get("http://%s:%d/profile" % (HOST, exp_port))
        doc = json.loads(body) if status == 200 else {}
        svc = [s for s in doc.get("services", []) if s.get("service") == service]
        inf = svc[0].get("samples", {}).get("in_flight", []) if svc else []
        if (inf and max(inf) >= 0.99) or time.time() > deadline:
            break
        time.sleep(0.25)
    if not at.check(pre + "the service is in the profile's services", svc,
                    [s.get("service") for s in doc.get("services", [])]):
        return
    svc, smp = svc[0], svc[0].get("samples", {})
    with open("/proc/%d/statm" % srv.pid) as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    measured = [i for i, m in enumerate(smp.get("measured", [])) if m]
    at.check(pre + "the server's pid", srv.pid in svc.get("pids", []), svc.get("pids"))
    at.check(pre + "RSS sampled every second, the last within 10% of /proc statm",
             len(measured) >= 5 and abs(smp["rss_bytes"][measured[-1]] - rss) <= 0.1 * rss,
             "%d measured, last %s, statm %d" % (
                 len(measured), measured and smp["rss_bytes"][measured[-1]], rss))
    at.check(pre + "the 2.5 s streamed request is a whole interval in flight",
             max(smp.get("in_flight", [0])) >= 0.99, max(smp.get("in_flight", [0])))
    at.check(pre + "arrivals count the requests sent",
             sum(smp.get("arrivals", [])) >= 1, sum(smp.get("arrivals", [])))
    # CPU time, cumulative, for plan's fit of CPU per request against load:
    # the kernel's own counter, read by agentprof at the interval's end and
    # by the test now, at most a second and the /profile read later.
    with open("/proc/%d/stat" % srv.pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    cpu_now = (int(v[11]) + int(v[12])) * 10**9 // os.sysconf("SC_CLK_TCK")
    cpu = [smp.get("cpu_ns", [])[i] for i in measured] if "cpu_ns" in smp else []
    at.check(pre + "CPU time sampled every second, never going back",
             len(cpu) == len(measured) and cpu and cpu[-1] > 0 and
             all(b >= a for a, b in zip(cpu, cpu[1:])), cpu[-5:])
    at.check(pre + "the last CPU time sampled is /proc stat's, less at most 2 s of one core",
             cpu and 0 <= cpu_now - cpu[-1] <= 2 * 10**9, "sampled %s, now %d" % (
                 cpu and cpu[-1], cpu_now))
    cap = [l for l in doc.get("capacity", []) if "capacity of %s:" % service in l]
    at.check(pre + "the capacity line speaks of memory from the samples",
             cap and "memory not sampled" not in cap[0], cap)


def random_segment(rng):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(7))


def check_attack(prom, port, exp_port, service):
    """Thousands of random paths: the route series stay within the cap."""
    pre = "cardinality: "
    rng = random.Random(16)
    base = "http://%s:%d" % (HOST, exp_port)
    before = parse_metrics(http_get(base + "/metrics")[2])
    n = 2000
    conn = drive._new_conn(HOST, port, 30)[0]
    errors = 0
    for i in range(n):
        try:
            conn.request("GET", "/%s/%s?ms=0" % (random_segment(rng), random_segment(rng)))
            conn.getresponse().read()
        except OSError:
            errors += 1
            conn.close()
            conn = drive._new_conn(HOST, port, 30)[0]
    conn.close()
    time.sleep(1.5)
    after = parse_metrics(http_get(base + "/metrics")[2])
    routes = {dict(k[1]).get("http_route") for k in after
              if k[0] == "http_server_request_duration_seconds_count"
              and dict(k[1]).get("service_name") == service}
    at.check(pre + "at most %d routes and (other) after %d random paths" % (MAX_ROUTES, n),
             len(routes) <= MAX_ROUTES + 1 and "(other)" in routes, sorted(routes)[:20])
    other = series(after, "http_server_request_duration_seconds_count", service_name=service,
                   http_route="(other)")
    key = ("agentprof_cardinality_overflow_total", frozenset({("cap", "routes")}))
    overflow = after.get(key, 0) - before.get(key, 0)
    admitted = len(routes) - 1 - len({dict(k[1]).get("http_route") for k in before
                                      if k[0] == "http_server_request_duration_seconds_count"
                                      and dict(k[1]).get("service_name") == service})
    at.check(pre + "every request is counted: (other) holds what overflowed",
             errors == 0 and sum(other.values()) == overflow == n - admitted,
             "errors %d, (other) %s, overflow counter +%s, expected %d" % (
                 errors, other, overflow, n - admitted))
    # A group (route, method, status, class) is ~50 series: the two histograms and counters.
    growth = len(after) - len(before)
    at.check(pre + "the scrape grew by at most 60 series a route admitted (and (other))",
             growth <= 60 * (admitted + 1),
             "%d series before, %d after, %d routes admitted" % (len(before), len(after),
                                                                 admitted))
    total = prom.wait_value('count(http_server_request_duration_seconds_count{service_name="%s"})'
                            % service, None, timeout=3)
    at.check(pre + "Prometheus holds the same bounded series", total is not None and
             total <= (MAX_ROUTES + 1) * 8, total)


def check_late_process(tmp):
    """Without -p: a server started after the exporter, then stopped."""
    pre = "discovery: "
    name = "agentprof-export-late-%d.service" % os.getpid()
    cg = unit_cgroup(name)
    ex = start_export(["--rescan", "1", "--forget", "3", "--sample-interval", "1"],
                      LATE_EXPORT_PORT)
    base = "http://%s:%d" % (HOST, LATE_EXPORT_PORT)
    srv = None
    try:
        srv, port = at.start_server("c", os.path.join(tmp, "late-truth.jsonl"), cgroup=cg)
        t0 = time.monotonic()
        seen = None
        while time.monotonic() - t0 < 10:
            m = parse_metrics(http_get(base + "/metrics")[2])
            if any(k[0] == "agentprof_service_processes" and
                   dict(k[1]).get("service_name") == name for k in m):
                seen = time.monotonic() - t0
                break
            time.sleep(0.25)
        at.check(pre + "a server started after the exporter is traced within 3 s",
                 seen is not None and seen <= 3, seen)
        sent = drive.keepalive(HOST, port, 5, ms=2)
        time.sleep(0.5)
        m = parse_metrics(http_get(base + "/metrics")[2])
        got = sum(series(m, "http_server_request_duration_seconds_count",
                         service_name=name).values())
        at.check(pre + "its requests are counted", got == len(sent) and len(sent) == 5,
                 "%s counted, %d sent" % (got, len(sent)))
        at.stop_server(srv)
        srv = None
        t0 = time.monotonic()
        gone = None
        while time.monotonic() - t0 < 15:
            m = parse_metrics(http_get(base + "/metrics")[2])
            if not any(dict(k[1]).get("service_name") == name for k in m):
                gone = time.monotonic() - t0
                break
            time.sleep(0.25)
        # --forget 3 after the sample (every second) that found it gone.
        at.check(pre + "its series leave /metrics --forget (3) s after it exits, within 2 s",
                 gone is not None and 2.5 <= gone <= 5.5, gone)
    finally:
        if srv:
            at.stop_server(srv)
        rc, _, err = at.stop_agentprof(ex)
        os.rmdir(cg)
    at.check(pre + "exporter exits 0 on SIGINT", rc == 0, err[-300:])


def check_peers(tmp):
    """Per route and peer: calls and wait against the app server's own clock."""
    import test_upstream as tu
    pre = "peers: "
    tu.build_app()
    truth_path = os.path.join(tmp, "up-truth.jsonl")
    open(truth_path, "w").close()
    procs, ex = [], None
    try:
        up, port_a = tu.spawn([at.PYTHON, tu.UPSTREAM, "--port", "0"])
        procs.append(up)
        app, port = tu.spawn([tu.APP, "--port", "0", "--upstream", str(port_a),
                              "--truth", truth_path])
        procs.append(app)
        ex = start_export(["-p", str(app.pid), "--peer-name", "%s:%d=llm" % (HOST, port_a)],
                          LATE_EXPORT_PORT)
        sent = []
        for ms in (30, 60, 30, 60):
            conn = drive._new_conn(HOST, port, 30)[0]
            rid = drive.next_id("peer")
            sent.append(drive.request(conn, "GET", "/call/%s?ms=%d" % (drive._path_id(rid), ms),
                                      rid, "simple", close=True))
            conn.close()
        tu.wait_lines(truth_path, len(sent))
        time.sleep(0.5)
        m = parse_metrics(http_get("http://%s:%d/metrics" % (HOST, LATE_EXPORT_PORT))[2])
    finally:
        if ex:
            at.stop_agentprof(ex)
        for p in reversed(procs):
            at.stop_server(p)
    truth = [t for t in at.load_jsonl(truth_path) if t.get("upstream")]
    want_wait = sum(t["upstream"]["wait_ns"] for t in truth)
    sel = {"http_route": "/call/:id", "peer": "llm", "kind": "upstream"}
    calls = [v for k, v in m.items() if k[0] == "agentprof_request_peer_calls_total"
             and all(dict(k[1]).get(a) == b for a, b in sel.items())]
    wait = [v for k, v in m.items() if k[0] == "agentprof_request_peer_wait_seconds_total"
            and all(dict(k[1]).get(a) == b for a, b in sel.items())]
    at.check(pre + "client saw no errors, one truth line a call",
             not [s for s in sent if s["error"]] and len(truth) == 4, (sent[:1], len(truth)))
    at.check(pre + "route /call/:id and peer llm: one call a request", calls == [4.0], calls)
    at.check(pre + "route /call/:id and peer llm: wait within 10% or 3 ms a call of the truth",
             len(wait) == 1 and abs(wait[0] * 1e9 - want_wait) <= max(0.1 * want_wait,
                                                                      4 * 3_000_000),
             "exporter %s s, truth %d ns" % (wait, want_wait))


def check_python(tmp):
    """An asyncio server: the CPython runtime reader engaged, CPU per request right."""
    pre = "asyncio: "
    truth_path = os.path.join(tmp, "py-truth.jsonl")
    srv, port = at.start_server("asyncio", truth_path)
    drive.new_conn_each(HOST, port, 1, ms=1, prefix=at.WARM_UP)
    ex = None
    try:
        ex = start_export(["-p", str(srv.pid), "--service", "pyagent=pid:%d" % srv.pid],
                          LATE_EXPORT_PORT)
        sent = drive.keepalive(HOST, port, 6, ms=lambda i: COSTS[i % 2])
        time.sleep(0.5)
        m = parse_metrics(http_get("http://%s:%d/metrics" % (HOST, LATE_EXPORT_PORT))[2])
    finally:
        if ex:
            at.stop_agentprof(ex)
        at.stop_server(srv)
    truth = at.load_truth(truth_path)
    modes = {dict(k[1]).get("mode"): v for k, v in m.items()
             if k[0] == "agentprof_traced_processes"}
    at.check(pre + "traced task-aware (the CPython runtime reader)",
             modes.get("task_aware") == 1, modes)
    count = sum(series(m, "http_server_request_duration_seconds_count",
                       service_name="pyagent").values())
    cpu = sum(series(m, "agentprof_request_cpu_seconds_sum", service_name="pyagent").values()) * 1e9
    want = sum(t["cpu_ns"] for t in truth)
    bound = sum(max(0.1 * t["cpu_ns"], 2_000_000) for t in truth)
    at.check(pre + "request count exact, under the --service name", count == len(sent) == len(truth) == 6,
             (count, len(sent), len(truth)))
    at.check(pre + "CPU sum within 10% or 2 ms a request (test_record's event-loop bound)",
             abs(cpu - want) <= bound, "exporter %d ns, truth %d ns" % (cpu, want))


def setpriv(caps):
    c = ",".join("+" + x for x in caps)
    return ["setpriv", "--inh-caps=-all" + ("," + c if c else ""),
            "--ambient-caps=-all" + ("," + c if c else ""),
            "--bounding-set=-all" + ("," + c if c else ""), "--"]


def check_capabilities(tmp):
    pre = "capabilities: "
    srv, port = at.start_server("c", os.path.join(tmp, "caps-truth.jsonl"))
    try:
        ex = None
        try:
            ex = start_export(["-p", str(srv.pid)], CAPS_EXPORT_PORT,
                              prefix=setpriv(DAEMONSET_CAPS))
            with open("/proc/%d/status" % ex.pid) as f:
                capeff = [l.split()[1] for l in f if l.startswith("CapEff")]
            sent = drive.keepalive(HOST, port, 4, ms=2)
            time.sleep(0.5)
            m = parse_metrics(http_get("http://%s:%d/metrics" % (HOST, CAPS_EXPORT_PORT))[2])
            got = sum(series(m, "http_server_request_duration_seconds_count").values())
            at.check(pre + "runs under exactly CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE "
                     "(CapEff %s) and counts requests" % capeff,
                     got == len(sent) == 4 and capeff and
                     int(capeff[0], 16) == (1 << 39 | 1 << 38 | 1 << 19),
                     "%s counted, CapEff %s" % (got, capeff))
        except RuntimeError as e:
            at.check(pre + "runs under exactly the DaemonSet's capabilities", False, str(e))
        finally:
            if ex:
                at.stop_agentprof(ex)
        for drop in DAEMONSET_CAPS:
            fewer = [c for c in DAEMONSET_CAPS if c != drop]
            p = subprocess.run(setpriv(fewer) + [at.AGENTPROF, "export", "-p", str(srv.pid),
                                                 "--listen", "%s:%d" % (HOST, CAPS_EXPORT_PORT)],
                               capture_output=True, text=True, timeout=60)
            name = "CAP_" + drop.upper()
            at.check(pre + "without %s: exits non-zero naming it" % name,
                     p.returncode != 0 and name in p.stderr, (p.returncode, p.stderr[-300:]))
    finally:
        at.stop_server(srv)


def main():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        at.check("prometheus and promtool installed (tools/deps.sh)", False,
                 "apt-get install prometheus")
        at.report()
        return
    tmp = tempfile.mkdtemp(prefix="agentprof-export-")
    service = "agentprof-export-%d.service" % os.getpid()
    cg = unit_cgroup(service)
    truth_path = os.path.join(tmp, "truth.jsonl")
    srv, port = at.start_server("c", truth_path, cgroup=cg)
    drive.new_conn_each(HOST, port, 1, ms=1, prefix=at.WARM_UP)
    prom = ex = None
    try:
        ex = start_export(["-p", str(srv.pid), "--max-routes", str(MAX_ROUTES),
                           "--sample-interval", "1"], EXPORT_PORT)
        prom = Prometheus(tmp, EXPORT_PORT)
        time.sleep(1.5)  # a scrape before the workload
        sent = workload(port)
        check_scrape(prom, srv, port, service, truth_path, sent)
        check_endpoints(EXPORT_PORT, service, len(sent))
        check_sampled(srv, port, EXPORT_PORT, service)
        check_profile_samples(srv, EXPORT_PORT, service)
        check_attack(prom, port, EXPORT_PORT, service)
    finally:
        if prom:
            prom.stop()
        if ex:
            rc, _, err = at.stop_agentprof(ex)
            at.check("exporter exits 0 on SIGINT", rc == 0, err[-300:])
        at.stop_server(srv)
        os.rmdir(cg)
    check_late_process(tmp)
    check_peers(tmp)
    check_python(tmp)
    check_capabilities(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    at.report()


if __name__ == "__main__":
    main()
