#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""`record` carries what `plan` needs, and `plan` answers from it (root).

The C test server (a thread per connection, each request burning a known
amount of thread CPU: its own truth file) runs in a cgroup of its own with a
CPU quota of half a core. `record` must save that quota, the process and
its request threads, and samples of clients and arrivals; it must end with a
capacity line. `plan` must then name the CPU as the bottleneck and put the
saturation at quota / CPU per request (from the server's truth) within 15%,
give the same answer in json, yaml and from an HTTP URL, draw its curves in
HTML, refuse a profile too thin to plan from, and say what failed for a URL
that does not answer. plan itself runs without root.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import http.server
import functools

import yaml

import agentprof_test as at
import drive

QUOTA_US, PERIOD_US = 50000, 100000
CORES = QUOTA_US / PERIOD_US
CLIENTS, PER_CLIENT, MS = 4, 40, 10
URL_PORT = 19350  # this test's port (the plan helper's range, 19300-19399)


def cpu_cgroup():
    """A child of the v1 cpu controller where mounted (this is what throttles), else v2."""
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        f = right.split()
        if f and f[0] == "cgroup" and "cpu" in f[2].split(","):
            d = os.path.join(left.split()[4], "agentprof-test-plan")
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, "cpu.cfs_period_us"), "w").write(str(PERIOD_US))
            open(os.path.join(d, "cpu.cfs_quota_us"), "w").write(str(QUOTA_US))
            return d
    root = at.cgroup2_mount()
    open(os.path.join(root, "cgroup.subtree_control"), "w").write("+cpu")
    d = os.path.join(root, "agentprof-test-plan")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "cpu.max"), "w").write(f"{QUOTA_US} {PERIOD_US}")
    return d


def remove_cgroup(d):
    parent = os.path.join(os.path.dirname(d), "cgroup.procs")
    for pid in open(os.path.join(d, "cgroup.procs")).read().split():
        try:
            open(parent, "w").write(pid)
        except OSError:
            pass
    os.rmdir(d)


def plan(*args, user=None):
    cmd = [at.AGENTPROF, "plan", *[str(a) for a in args]]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", URL_PORT), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    tmp = tempfile.mkdtemp(prefix="test_plan-")
    os.chmod(tmp, 0o755)
    truth, reqs, prof = (os.path.join(tmp, n) for n in ("truth.jsonl", "reqs.jsonl", "p.json"))
    cg = cpu_cgroup()
    try:
        srv, port = at.start_server("c", truth, cgroup=cg)
        _, rc, _, err, _ = at.traced(
            srv, ["-p", srv.pid, "-q"], reqs, prof,
            lambda ap: drive.concurrent("127.0.0.1", port, CLIENTS, PER_CLIENT, ms=MS))
    finally:
        remove_cgroup(cg)
    at.check("record exits 0", rc == 0, err[-2000:])
    cap = [l for l in err.splitlines() if l.startswith("agentprof: capacity of cpu_server")]
    at.check("record ends with a capacity line", cap and "bottleneck CPU" in cap[0]
             and "req/s per pod" in cap[0], "\n".join(cap) or err[-1000:])

    p = json.load(open(prof))
    svc = [s for s in p.get("services", []) if s["service"] == "cpu_server"]
    at.check("the profile has the service's section", len(svc) == 1, p.get("services"))
    if not svc:
        return at.report()
    svc = svc[0]
    at.check("the cgroup's quota is recorded",
             abs(svc["cgroup"]["cpu_limit_cores"] - CORES) < 1e-9, svc["cgroup"])
    at.check("the process is recorded", svc["pids"] == [srv.pid], svc["pids"])
    at.check("a thread per connection: as many request threads as clients",
             svc["request_threads"] == CLIENTS, svc["request_threads"])
    sm = svc["samples"]
    sent = CLIENTS * PER_CLIENT
    at.check("arrivals over the samples add up to the requests sent", sum(sm["arrivals"]) == sent,
             f"{sum(sm['arrivals'])} != {sent}")
    at.check("clients sampled while the clients were connected",
             CLIENTS in [c for c, m in zip(sm["clients"], sm["measured"]) if m], sm["clients"])
    at.check("RSS sampled", any(r > 0 for r in sm["rss_bytes"]), sm["rss_bytes"][:5])
    at.check("the probes' run time is recorded", p["run"].get("bpf_run_ns", 0) > 0, p["run"])

    truth_cpu = [json.loads(l)["cpu_ns"] for l in open(truth) if l.strip()]
    want = CORES / (sum(truth_cpu) / len(truth_cpu) / 1e9)
    # plan needs no root: run it as nobody on the profile (made readable).
    os.chmod(prof, 0o644)
    r = plan(prof, "--format", "json", user=65534)
    at.check("plan runs without root", r.returncode == 0, r.stderr)
    if r.returncode:
        return at.report()
    j = json.loads(r.stdout)
    got = j["summary"]["saturation_rps"]
    at.check("bottleneck: the CPU", "CPU" in j["summary"]["bottleneck"], j["summary"]["bottleneck"])
    print(f"saturation: plan {got:.1f} req/s, quota / truth CPU {want:.1f} req/s")
    at.check("saturation = quota / CPU per request (truth) within 15%",
             abs(got / want - 1) <= 0.15, f"plan {got:.1f} req/s, truth {want:.1f} req/s")
    at.check("threads per request, not an event loop", not j["pod"]["event_loop"], j["pod"])
    at.check("every assumption printed", len(j["assumptions"]) >= 8, j["assumptions"])

    y = plan(prof, "--format", "yaml")
    at.check("yaml: the same plan", y.returncode == 0 and yaml.safe_load(y.stdout)["summary"]
             == j["summary"], y.stderr)
    html = os.path.join(tmp, "plan.html")
    h = plan(prof, "--think", "1", "--slo", "p95=50ms", "--format", "html", "-o", html)
    body = open(html).read() if h.returncode == 0 else ""
    at.check("html: curves as inline SVG", body.count("<svg") >= 3 and "</html>" in body,
             h.stderr)
    t = plan(prof, "--think", "1", "--slo", "p95=50ms", "--target-rps", str(round(want * 3)))
    at.check("text: replicas and an HPA for the target",
             t.returncode == 0 and "replicas" in t.stdout and "HorizontalPodAutoscaler" in t.stdout
             and "requests_per_second" in t.stdout, t.stderr or t.stdout[:500])

    srv_http = serve(tmp)
    try:
        u = plan(f"http://127.0.0.1:{URL_PORT}/p.json", "--format", "json")
        at.check("from a URL: the same plan", u.returncode == 0 and
                 json.loads(u.stdout)["summary"] == j["summary"], u.stderr)
    finally:
        srv_http.shutdown()
    dead = plan(f"http://127.0.0.1:{URL_PORT + 1}/profile")
    at.check("a URL that does not answer: says so", dead.returncode == 1 and
             "is the exporter running" in dead.stderr, dead.stderr)
    thin = plan(prof, "--min-requests", str(sent + 1))
    at.check("too thin a profile: a clear error, no plan", thin.returncode == 1 and
             "too thin to plan from" in thin.stderr and not thin.stdout, thin.stderr)
    return at.report()


if __name__ == "__main__":
    sys.exit(main())
