#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""`make validate-plan`: `agentprof plan`'s predictions against a Locust load test.

For each configuration of the demo agent (tools/demo-agent):

  1. start the stack (run_stack.sh), put the agent in a cgroup of its own
     (the v1 cpu controller here, or v2) with the configuration's CPU quota;
  2. profile it at low load: Locust at LOW users, then 2 x LOW (so that plan
     can fit how CPU per request falls as the loop gets busier), under
     `agentprof record -p AGENT`;
  3. `agentprof plan` the profile: throughput and p95 against users, the knee
     (users at which p95 crosses the SLO), the bottleneck; the quota and the
     pool size are read from the profile, the way plan reads them on a pod;
  4. run Locust at user counts from well below to past the predicted
     saturation, each after its ramp-up and a warm-up, and measure
     throughput, p95, the agent's CPU and its event loop's wakeups (voluntary
     context switches of its main thread) over a steady window;
  5. print predicted against measured and write the HTML comparison
     (`agentprof plan --measured ... --format html`).

Configurations: "cpu" (a CPU quota of 0.25 core binds the event loop) and
"pool" (no quota; one PostgreSQL connection held ~40 ms per query turn
binds). Targets: throughput within 10% at every point, knee within 15%,
the bottleneck named as the measurement shows it (the agent's CPU use at
the highest load against its limit). Exit 1 when a target is missed.

Run as root (record loads BPF; cgroups). Environment: VALIDATE_OUT (default
validate-out/), VALIDATE_CONFIGS (cpu,pool), VALIDATE_STEADY (s, default 40),
VALIDATE_PORT_BASE (default 19300: LLM +1, agent +2).
"""

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
AGENTPROF = os.path.join(ROOT, "build", "agentprof")
OUT = os.path.abspath(os.environ.get("VALIDATE_OUT", os.path.join(ROOT, "validate-out")))
STEADY = int(os.environ.get("VALIDATE_STEADY", "40"))
WARMUP = 10
SPAWN_RATE = 20
# The profile's loads: (users as a multiple of the configuration's low_users, seconds).
PROFILE_PHASES = [(1, 150), (2.5, 150)]
PORT_BASE = int(os.environ.get("VALIDATE_PORT_BASE", "19300"))
CGROUP_NAME = "agentprof-validate-plan"
LOAD_CGROUP = "agentprof-validate-load"
# CPU weights of the two cgroups against the host's other tasks (1024 = one
# task at nice 0). The agent's is a pod's CPU request on a busy node: it
# gets its quota however many others run; the fake LLM and Locust stand for
# upstreams and clients elsewhere, which the model assumes are not short of
# CPU. The quota caps what the agent can take from the others.
AGENT_SHARES = 8192
LOAD_SHARES = 4096

CONFIGS = {
    "cpu": {
        "what": "CPU quota 0.5 core on the agent's cgroup, 30 ms of CPU more per query, "
                "pool of 10",
        "quota_us": 50000, "period_us": 100000, "low_users": 10, "slo_p95": 3.0,
        "env": {"AGENT_POOL_MIN": "10", "AGENT_POOL_MAX": "10", "AGENT_CPU_MS": "30"},
        "expect": "cpu",
    },
    "pool": {
        "what": "CPU quota 1 core, a pool of 1 PostgreSQL connection held 40 ms more per query",
        "quota_us": 100000, "period_us": 100000, "low_users": 15, "slo_p95": 3.0,
        "env": {"AGENT_POOL_MIN": "1", "AGENT_POOL_MAX": "1", "AGENT_DB_HOLD_MS": "40"},
        "expect": "pool",
    },
}

# Locust through a wrapper: stats reset WARMUP s after the ramp-up, and at
# quit the window's request count, p95 and the agent's CPU over it.
WRAPPER = '''
import json, os, sys, time
sys.path.insert(0, {loadtest!r})
from locustfile import *  # noqa: F401,F403 (the user classes)
from locust import events
import gevent

_env = None
_mark = {{}}

def _cpu():
    with open("/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")

def _switches():
    # The loop thread's voluntary context switches: its sleeps, so its wakeups.
    with open("/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0

@events.init.add_listener
def _init(environment, **_kw):
    global _env
    _env = environment

def _reset():
    _env.runner.stats.reset_all()
    _mark.update(t=time.monotonic(), cpu=_cpu(), vcsw=_switches())

@events.spawning_complete.add_listener
def _spawned(user_count, **_kw):
    gevent.spawn_later({warmup}, _reset)

@events.quit.add_listener
def _quit(**_kw):
    if not _mark:
        return
    t = _env.runner.stats.total
    out = dict(window_s=time.monotonic() - _mark["t"], requests=t.num_requests,
               failures=t.num_failures, p95_s=t.get_response_time_percentile(0.95) / 1000,
               p99_s=t.get_response_time_percentile(0.99) / 1000,
               mean_s=t.avg_response_time / 1000, agent_cpu_s=_cpu() - _mark["cpu"],
               agent_wakeups=_switches() - _mark["vcsw"])
    with open({result!r}, "w") as f:
        json.dump(out, f)
'''


def log(msg):
    print(f"validate-plan: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def cpu_cgroup_dir(name):
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        fields, opts = left.split(), right.split()
        if opts[0] == "cgroup" and "cpu" in opts[2].split(","):
            return os.path.join(fields[4], name), 1
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        if right.split()[0] == "cgroup2":
            return os.path.join(left.split()[4], name), 2
    raise SystemExit("validate-plan: no cgroup cpu controller mounted")


def write(d, name, value):
    with open(os.path.join(d, name), "w") as f:
        f.write(str(value))


def cgroup_make(name, quota_us, period_us, shares):
    d, ver = cpu_cgroup_dir(name)
    os.makedirs(d, exist_ok=True)
    if ver == 1:
        write(d, "cpu.cfs_period_us", period_us)
        write(d, "cpu.cfs_quota_us", quota_us)
        write(d, "cpu.shares", shares)
    else:
        write(d, "cpu.max", f"{'max' if quota_us < 0 else quota_us} {period_us}")
        write(d, "cpu.weight", max(1, min(10000, shares * 100 // 1024)))
    return d


def cgroup_leave(d):
    if not d or not os.path.isdir(d):
        return
    parent = os.path.join(os.path.dirname(d), "cgroup.procs")
    try:
        pids = open(os.path.join(d, "cgroup.procs")).read().split()
    except OSError:
        pids = []
    for p in pids:
        try:
            with open(parent, "w") as f:
                f.write(p)
        except OSError:
            pass
    try:
        os.rmdir(d)
    except OSError as e:
        log(f"could not remove cgroup {d}: {e}")


class Stack:
    def __init__(self, name, cfg):
        self.state = os.path.join(OUT, name, "state")
        self.env = dict(os.environ, LLM_SCALE="0.5", LLM_PORT=str(PORT_BASE + 1),
                        AGENT_PORT=str(PORT_BASE + 2), AGENT_PBKDF2_ITERATIONS="1000",
                        # its own database: its cheap logins stay out of the demo's users
                        PG_DB="agentdemo_plan",
                        **cfg["env"])
        self.cg = self.load_cg = None
        self.cfg = cfg

    def __enter__(self):
        os.makedirs(self.state, exist_ok=True)
        self.load_cg = cgroup_make(LOAD_CGROUP, -1, 100000, LOAD_SHARES)
        self.cg = cgroup_make(CGROUP_NAME, self.cfg["quota_us"], self.cfg["period_us"],
                              AGENT_SHARES)
        run([os.path.join(ROOT, "tools/demo-agent/run_stack.sh"), self.state], env=self.env)
        self.pid = int(open(os.path.join(self.state, "agent.pid")).read())
        self.url = "http://127.0.0.1:" + open(os.path.join(self.state, "agent.port")).read().strip()
        write(self.cg, "cgroup.procs", self.pid)
        write(self.load_cg, "cgroup.procs", open(os.path.join(self.state, "llm.pid")).read())
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.run([os.path.join(ROOT, "tools/demo-agent/stop_stack.sh"), self.state],
                       env=self.env)
        cgroup_leave(self.cg)
        cgroup_leave(self.load_cg)


def locust(stack, users, seconds, tag, outdir):
    result = os.path.join(outdir, f"locust_{tag}.json")
    wrapper = os.path.join(outdir, f"locustfile_{tag}.py")
    with open(wrapper, "w") as f:
        f.write(WRAPPER.format(loadtest=os.path.join(ROOT, "tools/loadtest"), pid=stack.pid,
                               warmup=WARMUP, result=result))
    env = dict(os.environ, AGENTPROF_SLO="0", AGENTPROF_WAIT_MIN="1", AGENTPROF_WAIT_MAX="3")
    cmd = ["nice", "-n", "5", PY, "-m", "locust", "-f", wrapper, "--headless", "-u", str(users),
           "-r", str(SPAWN_RATE), "-t", f"{seconds}s", "--stop-timeout", "0", "--host", stack.url,
           "--only-summary"]
    proc = subprocess.Popen(cmd, stdout=open(os.path.join(outdir, f"locust_{tag}.log"), "w"),
                            stderr=subprocess.STDOUT, env=env)
    write(stack.load_cg, "cgroup.procs", proc.pid)
    return proc, result


def profile(stack, users, outdir):
    """Low load: `record` from before the first user connects, then Locust at
    users and at 2.5 times as many (PROFILE_PHASES): the two loads let plan fit
    how CPU per request changes with load."""
    prof = os.path.join(outdir, "profile.json")
    logf = os.path.join(outdir, "record.log")
    phases = [(round(users * k), secs) for k, secs in PROFILE_PHASES]
    log(f"recording the agent (pid {stack.pid}) at " +
        ", then ".join(f"{u} users for {s} s" for u, s in phases))
    rec = subprocess.Popen([AGENTPROF, "record", "-p", str(stack.pid), "-q", "-o", prof],
                           stderr=open(logf, "w"))
    for _ in range(300):
        if "agentprof: tracing" in open(logf).read() or rec.poll() is not None:
            break
        time.sleep(0.1)
    proc = None
    try:
        for i, (u, secs) in enumerate(phases):
            proc, _ = locust(stack, u, secs, f"profile{i}", outdir)
            proc.wait()
    finally:
        for p in (proc, rec):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT if p is rec else signal.SIGTERM)
    rec.send_signal(signal.SIGINT)
    if rec.wait() != 0:
        raise SystemExit(f"validate-plan: agentprof record failed: {open(logf).read()}")
    sys.stderr.write(open(logf).read())
    return prof


# The locustfile's task weights: what every measured window runs (logins are
# in the ramp-up, before the window).
MIX = "simple=10,moderate=5,complex=2,/agent/conversation/:id/end=1"


def plan(prof, slo, *args, fmt="json"):
    out = subprocess.run([AGENTPROF, "plan", prof, "--slo", f"p95={slo}s", "--mix", MIX,
                          "--min-requests", "10", "--format", fmt, *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout) if fmt == "json" else out.stdout


def measure(stack, users, outdir):
    secs = int(users / SPAWN_RATE + WARMUP + STEADY + 1)
    proc, result = locust(stack, users, secs, f"u{users}", outdir)
    try:
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
    r = json.load(open(result))
    r["users"] = users
    r["x"] = r["requests"] / r["window_s"]
    r["cpu_cores"] = r["agent_cpu_s"] / r["window_s"]
    n = max(r["requests"], 1)
    r["cpu_ms_per_req"] = r["agent_cpu_s"] * 1e3 / n
    r["wakeups_per_req"] = r.get("agent_wakeups", 0) / n
    return r


def user_points(pred):
    """From a third of the predicted saturation population N* to well past it."""
    nstar = pred["summary"]["saturation_rps"] * (pred["closed"]["think_s"] +
                                                 pred["closed"]["points"][0]["mean_s"])
    return sorted({max(2, round(f * nstar)) for f in (0.3, 0.6, 0.9, 1.1, 1.3, 1.6)})


def knee_of(points, slo):
    """Users at which p95 first crosses the SLO, interpolated between measured points."""
    prev = None
    for p in points:
        if p["p95_s"] > slo:
            if prev is None:
                return p["users"]
            u0, y0, u1, y1 = prev["users"], prev["p95_s"], p["users"], p["p95_s"]
            return u0 + (slo - y0) * (u1 - u0) / (y1 - y0)
        prev = p
    return None


def predicted_at(pred, users):
    return min(pred["closed"]["points"], key=lambda p: abs(p["users"] - users))


def validate(name, cfg):
    outdir = os.path.join(OUT, name)
    os.makedirs(outdir, exist_ok=True)
    log(f"configuration '{name}': {cfg['what']}")
    with Stack(name, cfg) as stack:
        prof = profile(stack, cfg["low_users"], outdir)
        slo = cfg["slo_p95"]
        pred = plan(prof, slo)
        with open(os.path.join(outdir, "plan.txt"), "w") as f:
            f.write(plan(prof, slo, fmt="text"))
        users = user_points(pred)
        for n in pred.get("assumptions", []):
            if n.startswith("CPU per request"):
                log(f"plan: {n}")
        log(f"plan: bottleneck {pred['summary']['bottleneck']}, saturation "
            f"{pred['summary']['saturation_rps']:.1f} req/s, knee (p95 > {slo} s) at "
            f"{pred['summary']['knee_users_p95']} users; measuring at {users} users")
        meas = []
        for u in users:
            load = os.getloadavg()[0]
            r = measure(stack, u, outdir)
            r["loadavg"] = load
            meas.append(r)
            log(f"  {u} users: {r['x']:.1f} req/s, p95 {r['p95_s']:.2f} s, agent CPU "
                f"{r['cpu_cores']:.2f} cores, host load {load:.1f}")
    csv = os.path.join(outdir, "measured.csv")
    with open(csv, "w") as f:
        f.write("# users,req/s,p95_s,p99_s\n")
        for r in meas:
            f.write(f"{r['users']},{r['x']:.3f},{r['p95_s']:.3f},{r['p99_s']:.3f}\n")
    html = os.path.join(outdir, "compare.html")
    plan(prof, slo, "--measured", csv, "-o", html, fmt="html")
    with open(os.path.join(outdir, "compare.txt"), "w") as f:
        f.write(plan(prof, slo, "--measured", csv, fmt="text"))
    return report(name, cfg, pred, meas, html)


def report(name, cfg, pred, meas, html):
    print(f"\n=== {name}: {cfg['what']} ===")
    print(f"{'USERS':>6} {'PRED_RPS':>9} {'MEAS_RPS':>9} {'DIFF':>7} {'PRED_P95':>9} "
          f"{'MEAS_P95':>9} {'AGENT_CPU':>10} {'CPU_MS/REQ':>11} {'WAKEUPS/REQ':>12} {'LOAD':>5}")
    ok = True
    for r in meas:
        p = predicted_at(pred, r["users"])
        diff = p["throughput_rps"] / r["x"] - 1
        ok &= abs(diff) <= 0.10
        print(f"{r['users']:>6} {p['throughput_rps']:>9.1f} {r['x']:>9.1f} {diff * 100:>+6.1f}% "
              f"{p['p95_s']:>9.2f} {r['p95_s']:>9.2f} {r['cpu_cores']:>10.2f} "
              f"{r['cpu_ms_per_req']:>11.1f} {r['wakeups_per_req']:>12.1f} {r['loadavg']:>5.1f}")
    kp = pred["summary"]["knee_users_p95"]
    slo = cfg["slo_p95"]
    km = knee_of(meas, slo)
    knee_ok = bool(kp and km and abs(kp / km - 1) <= 0.15)
    print(f"knee (p95 > {slo} s): predicted {kp} users, measured "
          f"{'%.0f' % km if km else 'not reached'} users"
          f"{' (%+.0f%%)' % ((kp / km - 1) * 100) if kp and km else ''}")
    top = max(meas, key=lambda r: r["users"])
    limit = pred["pod"]["cpu_limit_cores"]
    cpu_bound = top["cpu_cores"] >= 0.85 * min(limit, 1)
    measured_bn = "cpu" if cpu_bound else "not cpu (pool)"
    predicted_bn = "pool" if "PostgreSQL" in pred["summary"]["bottleneck"] else "cpu"
    bn_ok = predicted_bn == cfg["expect"] and (cpu_bound == (cfg["expect"] == "cpu"))
    print(f"bottleneck: predicted {pred['summary']['bottleneck']}; measured at {top['users']} "
          f"users: agent CPU {top['cpu_cores']:.2f} of {min(limit, 1):.2f} cores -> "
          f"{measured_bn}")
    print(f"targets: throughput within 10% {'HIT' if ok else 'MISS'}; knee within 15% "
          f"{'HIT' if knee_ok else 'MISS'}; bottleneck {'HIT' if bn_ok else 'MISS'}")
    print(f"HTML comparison: {html}")
    return ok and knee_ok and bn_ok


def on_term(sig, _frame):
    # A background job's SIGINT is ignored: SIGTERM unwinds through the stack's cleanup.
    raise SystemExit(128 + sig)


def main():
    signal.signal(signal.SIGTERM, on_term)
    if os.geteuid() != 0:
        raise SystemExit("validate-plan: needs root (record loads BPF; cgroups): sudo make "
                         "validate-plan")
    names = os.environ.get("VALIDATE_CONFIGS", "cpu,pool").split(",")
    for n in names:
        if n not in CONFIGS:
            raise SystemExit(f"validate-plan: unknown configuration '{n}' (cpu, pool)")
    os.makedirs(OUT, exist_ok=True)
    log(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    results = [validate(n, CONFIGS[n]) for n in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
