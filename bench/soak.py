#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Soak: `agentprof record` left on against a demo-like load, its resources
sampled every minute (bench/README.md, "Soak").

Starts the demo stack (tools/demo-agent/run_stack.sh: FastAPI + asyncpg +
the fake LLM), traces the agent with `agentprof record --requests -o` and
drives it with Locust (tools/loadtest/locustfile.py) for SOAK_MINUTES. Every
SOAK_INTERVAL seconds it samples agentprof's RSS (VmRSS), its open file
descriptors, the entries of each of its BPF hash maps (`bpftool map dump`:
map fill) and the requests recorded so far. At the end it stops everything
it started and checks that, from the second sample on (the first minute is
warm-up: allocator arenas, the groups and statements seen once), RSS and the
fill of each hash map stay within 5% of their level (LRU maps fill up by
design and are only listed) and the descriptors do not change. The
samples and the verdict go to bench/soak.json (SOAK_OUT) and a table to
stdout. Exit status 0 when flat.

Environment: SOAK_MINUTES (30), SOAK_INTERVAL (60), SOAK_USERS (20),
SOAK_LLM_SCALE (0.5), SOAK_OUT (bench/soak.json); LLM_PORT and AGENT_PORT
are passed to the stack (0: any free port).

Usage: bench/soak.py   (root; after `make`; `make soak` runs it)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENTPROF = os.path.join(ROOT, "build", "agentprof")
PYTHON = "/usr/bin/python3"
MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
INTERVAL = float(os.environ.get("SOAK_INTERVAL", "60"))
USERS = int(os.environ.get("SOAK_USERS", "20"))
LLM_SCALE = os.environ.get("SOAK_LLM_SCALE", "0.5")
OUT = os.environ.get("SOAK_OUT", os.path.join(ROOT, "bench", "soak.json"))
FLAT = 0.05
HASH_TYPES = ("hash", "lru_hash", "percpu_hash", "lru_percpu_hash")


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def bpf_maps(pid):
    """{map id: (name, type, max_entries)} of the maps process pid holds."""
    ids = set()
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("map_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            continue
    out = {}
    for i in sorted(ids):
        r = subprocess.run(["bpftool", "map", "show", "id", str(i), "--json"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            m = json.loads(r.stdout)
            out[i] = (m.get("name", "?"), m.get("type", "?"), m.get("max_entries", 0))
    return out


def map_entries(map_id):
    r = subprocess.run(["bpftool", "map", "dump", "id", str(map_id), "--json"],
                       capture_output=True, text=True)
    return len(json.loads(r.stdout or "[]")) if r.returncode == 0 else -1


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def sample(ap_pid, maps, reqs, t0):
    fill = {name: map_entries(i) for i, (name, kind, _) in maps.items() if kind in HASH_TYPES}
    return {"minute": round((time.monotonic() - t0) / 60, 1),
            "rss_kib": proc_status(ap_pid, "VmRSS"),
            "fds": len(os.listdir("/proc/%d/fd" % ap_pid)),
            "map_fill": fill, "requests": count_lines(reqs)}


def verdict(samples, maps):
    """Per quantity: level (first sample after warm-up), max, spread, flat.
    LRU maps fill up by design (the oldest entries go when full): their fill
    is listed with their capacity, not judged."""
    steady = samples[1:] if len(samples) > 1 else samples
    out = {}

    def judge(name, values, tol, slack=0):
        base = values[0]
        hi = max(values)
        out[name] = {"level": base, "max": hi, "min": min(values),
                     "flat": hi <= base * (1 + tol) + slack and min(values) >= base * (1 - tol)
                     - slack}
    judge("rss_kib", [s["rss_kib"] for s in steady], FLAT)
    judge("fds", [s["fds"] for s in steady], 0)
    # A hash map's fill follows the load's connections and threads: within
    # 5% of its level, or a handful of entries for small ones.
    kinds = {name: kind for name, kind, _ in maps.values()}
    for name in steady[0]["map_fill"]:
        if not kinds.get(name, "").startswith("lru"):
            judge("map_fill." + name, [s["map_fill"].get(name, 0) for s in steady], FLAT, slack=8)
    return out


def stop(p, timeout):
    """SIGINT, then SIGKILL after timeout s."""
    if not p or p.poll() is not None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def main():
    if os.geteuid() != 0:
        sys.exit("soak: needs root (loads BPF programs, starts PostgreSQL if down)")
    work = tempfile.mkdtemp(prefix="agentprof-soak-")
    state = os.path.join(work, "state")
    reqs, prof = os.path.join(work, "requests.jsonl"), os.path.join(work, "profile.json")
    env = dict(os.environ, LLM_SCALE=LLM_SCALE)
    ap = locust = None
    samples = []
    print("soak: %g minutes, a sample every %g s, %d Locust users, work dir %s"
          % (MINUTES, INTERVAL, USERS, work), file=sys.stderr)
    run([os.path.join(ROOT, "tools", "demo-agent", "run_stack.sh"), state], env=env,
        stderr=open(os.path.join(work, "stack.log"), "w"))
    try:
        agent_pid = int(open(os.path.join(state, "agent.pid")).read())
        agent_url = "http://127.0.0.1:%s" % open(os.path.join(state, "agent.port")).read().strip()
        ap = subprocess.Popen([AGENTPROF, "record", "-q", "-p", str(agent_pid), "--requests",
                               reqs, "-o", prof], stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(work, "agentprof.log"), "w"))
        deadline = time.monotonic() + 60
        while "agentprof: tracing" not in open(os.path.join(work, "agentprof.log")).read():
            if ap.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("agentprof did not start: see %s/agentprof.log" % work)
            time.sleep(0.2)
        locust = subprocess.Popen(
            [PYTHON, "-m", "locust", "-f", os.path.join(ROOT, "tools", "loadtest", "locustfile.py"),
             "--headless", "-u", str(USERS), "-r", "2", "-t", "%ds" % (MINUTES * 60 + INTERVAL),
             "--host", agent_url, "--only-summary"],
            stdout=open(os.path.join(work, "locust.log"), "w"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        maps = bpf_maps(ap.pid)
        t0 = time.monotonic()
        n = int(MINUTES * 60 / INTERVAL)
        for k in range(1, n + 1):
            time.sleep(max(0, t0 + k * INTERVAL - time.monotonic()))
            if ap.poll() is not None:
                raise RuntimeError("agentprof exited (%s): see %s/agentprof.log"
                                   % (ap.returncode, work))
            s = sample(ap.pid, maps, reqs, t0)
            samples.append(s)
            print("soak: minute %5.1f  RSS %7d KiB  fds %3d  requests %7d  %s" % (
                s["minute"], s["rss_kib"], s["fds"], s["requests"],
                " ".join("%s=%d" % kv for kv in sorted(s["map_fill"].items()))), file=sys.stderr)
    finally:
        stop(locust, 30)
        stop(ap, 60)
        subprocess.run([os.path.join(ROOT, "tools", "demo-agent", "stop_stack.sh"), state],
                       stderr=subprocess.DEVNULL)
    if not samples:
        sys.exit("soak: no sample taken")
    v = verdict(samples, maps)
    lru = {name: {"first": samples[0]["map_fill"].get(name), "last": samples[-1]["map_fill"].get(name),
                  "max_entries": mx} for name, kind, mx in maps.values() if kind.startswith("lru")}
    result = {"minutes": MINUTES, "interval_s": INTERVAL, "users": USERS, "llm_scale": LLM_SCALE,
              "agentprof_exit": ap.returncode if ap else None,
              "maps": {name: {"type": kind, "max_entries": mx}
                       for name, kind, mx in maps.values()},
              "samples": samples, "verdict": v, "lru_fill": lru,
              "flat": all(x["flat"] for x in v.values()) and ap.returncode == 0}
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1)
    print("%-22s %10s %10s %10s  %s" % ("quantity", "level", "min", "max", "flat (5%)"))
    for name, x in v.items():
        print("%-22s %10d %10d %10d  %s" % (name, x["level"], x["min"], x["max"],
                                            "yes" if x["flat"] else "NO"))
    for name, x in lru.items():
        print("%-22s %10s %10d %10d  (LRU: bounded at %d, not judged)"
              % ("map_fill." + name, "-", x["first"], x["last"], x["max_entries"]))
    print("soak: %d requests recorded in %g minutes; agentprof exit %s; results in %s"
          % (samples[-1]["requests"], MINUTES, ap.returncode, OUT))
    sys.exit(0 if result["flat"] else 1)


if __name__ == "__main__":
    main()
