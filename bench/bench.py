#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Overhead benchmark of agentprof (run through bench/run.sh / `make bench`).

For each workload, interleaved rounds (the order rotated each round: A B C,
B C A, C A B, ...: round_order()) of
    A  untraced
    B  traced by `agentprof record -p PID -q -o PROFILE`
    C  traced by `bpftrace bench/naive.bt PID` (the naive equivalent)
under the same fixed, saturating wrk load; then per workload: throughput and
latency ratios, the tracers' own CPU and peak RSS, BPF run time per call of
every program (kernel bpf_stats), ring-buffer records per request and drops,
and how long agentprof took to attach (its load line: programs, load and
verifier time). Every agentprof figure is printed with the mode (hooks) the
run used. Results go to bench/out/results-<sha>-<timestamp>.json and a table to stdout.

Everything started here runs in its own session and is stopped (by pid) on
exit, Ctrl-C or SIGTERM. Kernel BPF statistics are switched on with
BPF_ENABLE_STATS (a file descriptor: they switch off again when it is closed,
even if this process dies), falling back to kernel.bpf_stats_enabled, whose
old value is then restored.
"""

import argparse
import concurrent.futures
import ctypes
import datetime
import grp
import hashlib
import json
import os
import platform
import pwd
import re
import shutil
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BUILD = os.path.join(ROOT, "build")
AGENTPROF = os.path.join(BUILD, "agentprof")
TINY = os.path.join(BUILD, "bench", "tiny_server")
NAIVE_BT = os.path.join(BENCH, "naive.bt")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"
# Seconds of load, after each traced run, with BPF run-time statistics on.
STATS_SECONDS = 5
TRACING_PROG_TYPES = {"tracepoint", "raw_tracepoint", "tracing", "kprobe", "perf_event"}

CONFIGS = ("A", "B", "C")
CONFIG_NAMES = {"A": "untraced", "B": "agentprof", "C": "bpftrace"}
# --baseline BINARY: C is that agentprof (an earlier build) instead of bpftrace.
BINARIES = {"B": AGENTPROF}


def is_agentprof(cfg):
    return cfg in BINARIES


def round_order(rnd):
    """The configs of round rnd (1-based), rotated: A B C, B C A, C A B, ...

    Each config takes each place in turn, so whatever the place in a round
    does to a run (what ran just before it, how long since the last pause)
    falls on all three alike over len(CONFIGS) rounds. With A B C in every
    round, the demo's B and C came out 3-7% below A in rounds 2 and 3 of
    three full runs, level with A in round 1."""
    k = (rnd - 1) % len(CONFIGS)
    return CONFIGS[k:] + CONFIGS[:k]

# Issue 6 targets.
T_SWITCH_NS = 150
T_SYSCALL_NS = 250
T_TINY_LOSS = 0.10
T_DEMO_LOSS = 0.02
T_DEMO_P99 = 0.03
T_USER_CPU_PCT = 2.0
T_RECORDS = 2.0


class Stop(Exception):
    """SIGTERM/SIGHUP: stop and clean up."""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes

class Procs:
    """Every process started here; each in its own session (pgid == pid)."""

    def __init__(self):
        self.live = []

    def start(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.live.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=15.0):
        """Signal p's process group, wait, SIGKILL it if it lingers."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} ignored signal {sig}: SIGKILL")
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        else:
            # The leader is gone; anything left in its group goes too.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p, signal.SIGINT if getattr(p, "tracer", False) else signal.SIGTERM,
                      timeout=10)


# ------------------------------------------------------------------ /proc

def proc_cpu_ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def proc_runtime_ns(pid):
    """On-CPU time of the live threads of pid from schedstat, in ns (precise,
    unlike the tick-sampled utime+stime; threads that exit are not counted)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def prog_ids_of(pid):
    """IDs of the BPF programs a process holds (program and link fds)."""
    ids = set()
    d = f"/proc/{pid}/fdinfo"
    try:
        names = os.listdir(d)
    except OSError:
        return ids
    for n in names:
        try:
            with open(os.path.join(d, n)) as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def bpftool_progs():
    try:
        out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                             text=True, timeout=30).stdout
        return json.loads(out or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []


def prog_stats(ids):
    """{id: (name, type, run_time_ns, run_cnt)} for the given program IDs."""
    res = {}
    for p in bpftool_progs():
        if p.get("id") in ids:
            res[p["id"]] = (p.get("name", "?"), p.get("type", "?"),
                            p.get("run_time_ns", 0), p.get("run_cnt", 0))
    return res


def foreign_tracing_progs(own_ids):
    """Names of tracing programs loaded by someone else (they tax A, B and C alike)."""
    names = {}
    for p in bpftool_progs():
        if p.get("id") in own_ids or p.get("type") not in TRACING_PROG_TYPES:
            continue
        names[p.get("name", "?")] = names.get(p.get("name", "?"), 0) + 1
    return names


# ------------------------------------------------------------------ bpf stats

class BpfStats:
    def __init__(self):
        self.fd = None
        self.old_sysctl = None
        self.method = None

    def enable(self):
        """Switch statistics on; False if they cannot be."""
        arch_nr = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351,
                   "ppc64le": 361}.get(platform.machine())
        if arch_nr is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            attr = ctypes.create_string_buffer(16)  # enable_stats.type = BPF_STATS_RUN_TIME (0)
            fd = libc.syscall(ctypes.c_long(arch_nr), ctypes.c_long(32),  # BPF_ENABLE_STATS
                              attr, ctypes.c_long(4))
            if fd >= 0:
                self.fd = fd
                self.method = "BPF_ENABLE_STATS (an fd held for each statistics window)"
                return True
        try:
            with open(STATS_SYSCTL) as f:
                self.old_sysctl = f.read().strip()
            with open(STATS_SYSCTL, "w") as f:
                f.write("1")
            self.method = (f"sysctl kernel.bpf_stats_enabled=1 for each statistics window "
                           f"(was {self.old_sysctl})")
            return True
        except OSError as e:
            self.old_sysctl = None
            self.method = None
            log(f"cannot enable BPF run-time statistics: {e}")
            return False

    def restore(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.old_sysctl is not None:
            try:
                with open(STATS_SYSCTL, "w") as f:
                    f.write(self.old_sysctl)
            except OSError as e:
                log(f"could not restore {STATS_SYSCTL}={self.old_sysctl}: {e}")
            self.old_sysctl = None


STATS = BpfStats()


# ------------------------------------------------------------------ wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", v)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {"requests": None, "rps": None, "p50_ms": None, "p99_ms": None, "errors": 0,
         "non_2xx": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            r[key] = _ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non_2xx"] = int(m.group(1))
    return r


# ------------------------------------------------------------------ workloads

class TinyWorkload:
    key = "tiny"
    title = "minimal C server (epoll, 1 thread, GET /x/<n>, 2-byte body, keep-alive)"

    def __init__(self, procs, tmp, args):
        self.procs, self.tmp, self.args = procs, tmp, args
        self.duration = args.tiny_seconds
        self.proc = None

    def start(self):
        out = os.path.join(self.tmp, "tiny.out")
        with open(out, "w") as f:
            self.proc = self.procs.start([TINY, "-t", "1"], stdout=f, stderr=subprocess.STDOUT)
        port = None
        for _ in range(100):
            with open(out) as f:
                m = re.search(r"^listening (\d+)$", f.read(), re.M)
            if m:
                port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if port is None:
            raise RuntimeError("tiny_server did not start")
        self.port = port
        self.pid = self.proc.pid
        self.url = f"http://127.0.0.1:{port}/x/1"

    def prepare_run(self, tag):
        return []  # extra wrk args

    def cpu_pids(self):
        """The processes whose CPU is the server's (srv us/req)."""
        return [self.pid]

    def bpftrace_pid(self):
        """The pid config C traces (naive.bt follows no children)."""
        return self.pid

    def load_desc(self):
        return f"wrk -t2 -c{self.args.connections} -d{self.duration}s --latency {self.url}"

    def stop(self):
        if self.proc:
            self.procs.stop(self.proc)
            self.proc = None


def free_port():
    """A loopback port free now (the server binds it a moment later: start()
    retries if another process took it meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


# Everything nginx writes goes to its directory under the bench's temp dir:
# the compiled-in paths (/run/nginx.pid, /var/log/nginx, /var/lib/nginx) are
# the system nginx's. No access log: a log line per request would add a file
# write to every request, which neither the tiny server nor the reference
# below has. keepalive_requests high so that wrk's connections stay open for
# the whole run as with the tiny server (the default, 1000, would reconnect
# each one every 1000 requests).
NGINX_CONF = """\
# generated by bench/bench.py
worker_processes 1;
daemon off;
master_process on;
user {user} {group};
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /x/ {{
            return 200 "ok";
        }}
    }}
}}
"""


class NginxWorkload(TinyWorkload):
    """Debian's nginx, one worker, its own config in the temp dir. agentprof
    traces the master's pid: -p follows the worker, an existing child."""
    key = "nginx"
    title = "nginx (1 worker, GET /x/<n> -> return 200 \"ok\", keep-alive, no access log)"
    # What the nginx workload is compared with: measured before the
    # socket-tracepoint programs passed this kernel's verifier, when record
    # fell back to syscall tracepoints.
    reference = {"rps_ratio": 0.45, "mode": "syscall tracepoints (the old fallback)"}

    def __init__(self, procs, tmp, args):
        super().__init__(procs, tmp, args)
        self.duration = args.nginx_seconds
        self.dir = os.path.join(tmp, "nginx")

    def start(self):
        exe = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if not exe:
            raise RuntimeError("nginx not installed: run tools/deps.sh")
        os.makedirs(self.dir, exist_ok=True)
        # The worker runs as nobody; it opens nothing here (the master holds the log).
        nobody = pwd.getpwnam("nobody")
        user, group = nobody.pw_name, grp.getgrgid(nobody.pw_gid).gr_name
        for _ in range(3):  # the free port may be taken before nginx binds it
            port = free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(user=user, group=group, dir=self.dir, port=port))
            log_ = os.path.join(self.dir, "error.log")
            out = os.path.join(self.dir, "nginx.out")
            with open(out, "w") as f:
                # -p/-e: the prefix and startup error log are ours too, before
                # the config is read.
                self.proc = self.procs.start([exe, "-p", self.dir + "/", "-e", log_, "-c", conf],
                                             stdout=f, stderr=subprocess.STDOUT)
            if self._wait_ready(port):
                self.port, self.pid = port, self.proc.pid
                self.workers = children_of(self.pid)
                self.url = f"http://127.0.0.1:{port}/x/1"
                return
            err = ""
            for path in (out, log_):
                try:
                    with open(path, errors="replace") as f:
                        err += f.read()
                except OSError:
                    pass
            self.stop()
            if "in use" not in err:
                break
        raise RuntimeError("nginx did not start: " + err.strip()[-800:])

    def _wait_ready(self, port):
        """True once the port answers and the worker exists."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                if children_of(self.proc.pid):
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def cpu_pids(self):
        return [self.pid] + self.workers

    def bpftrace_pid(self):
        return self.workers[0]

    def load_desc(self):
        return (super().load_desc() + f"; agentprof -p {self.pid} (the master), "
                f"bpftrace the worker {self.bpftrace_pid()}")


# Query mix of tools/loadtest/locustfile.py (simple:moderate:complex = 10:5:2),
# interleaved deterministically so every run sees the same sequence.
MIX = "smscsmssmcsmssmss"
BENCH_DB = "agentprof_bench"
QUERIES = {
    "s": ("simple", "What are large language models?"),
    "m": ("moderate", "What are the best practices for prompt engineering?"),
    "c": ("complex", "Compare the environmental impact of electric vehicles versus "
                     "hybrid vehicles over a 10-year period."),
}


class DemoWorkload:
    key = "demo"
    title = "demo agent (FastAPI/uvicorn + asyncpg + streamed fake LLM), POST /agent/query mix"

    def __init__(self, procs, tmp, args):
        self.procs, self.tmp, self.args = procs, tmp, args
        self.duration = args.demo_seconds
        self.state = os.path.join(tmp, "demo")
        self.started = False

    def _stack(self, script, env=None):
        p = self.procs.start([os.path.join(ROOT, "tools", "demo-agent", script), self.state],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)
        out, _ = p.communicate(timeout=120)
        self.procs.live.remove(p)
        return p.returncode, out

    def _psql(self, sql):
        """Run sql as the postgres superuser on the demo's cluster."""
        ver, cluster = os.environ.get("PG_VERSION", "15"), os.environ.get("PG_CLUSTER", "main")
        out = subprocess.run(["pg_lsclusters", "-h", ver, cluster], capture_output=True,
                             text=True).stdout.split()
        if len(out) < 4 or not out[3].startswith("online"):
            return False
        p = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-p", out[2],
                            "-d", "postgres", "-c", sql], capture_output=True, text=True,
                           cwd="/", timeout=60)
        if p.returncode != 0:
            log(f"psql {sql!r}: {p.stderr.strip()}")
        return p.returncode == 0

    def start(self):
        # A database of its own, created empty for every benchmark run and
        # dropped afterwards: runs on different commits see the same data.
        env = dict(os.environ, LLM_SCALE=str(self.args.llm_scale), LLM_SEED="1", PG_DB=BENCH_DB)
        self.started = True
        self._psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        rc, out = self._stack("run_stack.sh", env)
        if rc != 0:
            raise RuntimeError("tools/demo-agent/run_stack.sh failed:\n" + out.strip())
        with open(os.path.join(self.state, "agent.pid")) as f:
            self.pid = int(f.read())
        with open(os.path.join(self.state, "agent.port")) as f:
            self.port = int(f.read())
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/agent/query"

    def _post(self, path, body, token=None):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("X-Request-Class", "control")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def prepare_run(self, tag):
        """Fresh users and conversations for every run, created before any
        tracer attaches: the database grows between runs, conversations do
        not, so late runs are not slower than early ones."""
        nconv, nusers = 32, 4
        salt = f"{os.getpid()}_{tag}_{int(time.time() * 1000)}"
        self.nrun = getattr(self, "nrun", 0) + 1
        # The complex queries' tool call searches the history for the first
        # three words of the query: a word of its own per run keeps the
        # full-text matches of earlier runs out (no drift across rounds).
        word = "Bench" + "".join(chr(ord("a") + int(d)) for d in f"{self.nrun:03d}")
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            toks = list(ex.map(lambda i: self._post(
                "/auth/login", {"username": f"bench_{salt}_{i}", "password": "bench_pw"}
            )["token"], range(nusers)))
            convs = list(ex.map(lambda i: (toks[i % nusers], self._post(
                "/agent/conversation",
                {"initial_query": "Explain the concept of AI agents.",
                 "_metadata": {"complexity": "simple"}}, toks[i % nusers]
            )["conversation_id"]), range(nconv)))
        lua = os.path.join(self.tmp, f"demo_{tag}.lua")
        with open(lua, "w") as f:
            f.write("-- generated by bench/bench.py\nlocal convs = {\n")
            for tok, cid in convs:
                f.write(f'  {{"{tok}", {int(cid)}}},\n')
            f.write("}\nlocal mix = {\n")
            for ch in MIX:
                cls, q = QUERIES[ch]
                if cls == "complex":
                    q = f"{word} {q}"
                f.write(f'  {{"{cls}", {json.dumps(q)}}},\n')
            f.write(
                "}\nlocal n = 0\n"
                "request = function()\n"
                "  n = n + 1\n"
                "  local c = convs[(n % #convs) + 1]\n"
                "  local q = mix[(n % #mix) + 1]\n"
                "  local body = '{\"conversation_id\":' .. c[2] .. ',\"query\":\"' .. q[2] ..\n"
                "    '\",\"_metadata\":{\"complexity\":\"' .. q[1] .. '\"}}'\n"
                "  return wrk.format(\"POST\", \"/agent/query\", {\n"
                "    [\"Content-Type\"] = \"application/json\",\n"
                "    [\"Authorization\"] = \"Bearer \" .. c[1],\n"
                "    [\"X-Request-Class\"] = q[1]}, body)\n"
                "end\n")
        return ["-s", lua]

    def cpu_pids(self):
        return [self.pid]

    def bpftrace_pid(self):
        return self.pid

    def load_desc(self):
        return (f"wrk -t2 -c{self.args.connections} -d{self.duration}s --latency "
                f"-s <query mix> {self.url} (LLM_SCALE={self.args.llm_scale})")

    def stop(self):
        if self.started:
            self._psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            rc, out = self._stack("stop_stack.sh")
            if rc != 0:
                log("stop_stack.sh: " + out.strip())
            self.started = False


# The order of the default run (`make bench`).
WORKLOADS = {"tiny": TinyWorkload, "nginx": NginxWorkload, "demo": DemoWorkload}


# ------------------------------------------------------------------ tracers

LOAD_RE = re.compile(r"^agentprof: (\d+) BPF programs loaded in ([\d.]+) ms \(([\d.]+) ms in "
                     r"the verifier; largest (\S+), (\d+) instructions processed\)$")
MODE_RE = re.compile(r"\(([^()]*\d+ libssl probed)\)")


def parse_startup(text):
    """What `agentprof record` said up to its tracing line: the hooks in use
    ("tp_btf, socket tracepoints, task storage, 1 libssl probed"), the load
    line's figures, and every other line before the tracing one: the
    fallbacks taken or forced, each with its cost."""
    res = {"hooks": None, "load_ms": None, "verify_ms": None, "nprogs": None,
           "largest_prog": None, "largest_insns": None, "fallbacks": []}
    for line in text.splitlines():
        if not line.startswith("agentprof: "):
            continue
        if line.startswith("agentprof: tracing "):
            m = MODE_RE.search(line)
            res["hooks"] = m.group(1) if m else line[len("agentprof: tracing "):]
            break
        m = LOAD_RE.match(line)
        if m:
            res.update(nprogs=int(m.group(1)), load_ms=float(m.group(2)),
                       verify_ms=float(m.group(3)), largest_prog=m.group(4),
                       largest_insns=int(m.group(5)))
        else:
            res["fallbacks"].append(line[len("agentprof: "):])
    return res


STARTUP_KEYS = ("hooks", "load_ms", "verify_ms", "nprogs", "largest_prog", "largest_insns",
                "fallbacks")


def start_tracer(procs, cfg, pid, tmp, tag, bt_ok, ap_args=()):
    """Start tracer cfg ('B' or 'C') on pid; return (proc, info) once attached.
    ap_args: more options for `agentprof record` (--agentprof-args)."""
    info = {"attach_s": None}
    if is_agentprof(cfg):
        prof = os.path.join(tmp, f"profile_{tag}.json")
        err = os.path.join(tmp, f"agentprof_{tag}.err")
        ef = open(err, "w")
        p = procs.start([BINARIES[cfg], "record", "-p", str(pid), "-q", "-o", prof, *ap_args],
                        stdout=subprocess.DEVNULL, stderr=ef)
        ef.close()
        info.update(profile=prof, err=err)
        ready = (err, "agentprof: tracing")
    else:
        if not bt_ok:
            return None, info
        out = os.path.join(tmp, f"bpftrace_{tag}.out")
        err = os.path.join(tmp, f"bpftrace_{tag}.err")
        of, ef = open(out, "w"), open(err, "w")
        p = procs.start(["bpftrace", "--no-warnings", NAIVE_BT, str(pid)], stdout=of, stderr=ef)
        of.close()
        ef.close()
        info.update(out=out, err=err)
        ready = (out, "Attaching ")
    p.tracer = True
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        with open(ready[0], errors="replace") as f:
            text = f.read()
        i = text.find(ready[1])
        # stderr is unbuffered and record writes its tracing line in pieces:
        # the line is whole once its newline is there.
        if i >= 0 and (not is_agentprof(cfg) or "\n" in text[i:]):
            info["attach_s"] = round(time.monotonic() - t0, 3)
            if is_agentprof(cfg):
                info.update(parse_startup(text))
            break
        if p.poll() is not None:
            break
        time.sleep(0.02)
    if info["attach_s"] is None:
        procs.stop(p, signal.SIGINT)
        with open(info["err"], errors="replace") as f:
            raise RuntimeError(f"{CONFIG_NAMES[cfg]} did not attach: {f.read().strip()[-800:]}")
    return p, info


def finish_tracer(procs, cfg, p, info):
    """Stop the tracer (SIGINT) and collect what it reported."""
    rc = procs.stop(p, signal.SIGINT, timeout=60)
    res = {"exit_code": rc}
    with open(info["err"], errors="replace") as f:
        err = f.read()
    if is_agentprof(cfg):
        m = re.search(r"agentprof: (\d+) requests recorded", err)
        res["requests_recorded"] = int(m.group(1)) if m else None
        # After the tracing line: what happened while tracing (the startup
        # lines are in the run's fallbacks and load figures).
        i = err.find("agentprof: tracing ")
        after = err[i:].split("\n", 1)[1] if i >= 0 and "\n" in err[i:] else ""
        res["messages"] = [l for l in after.splitlines()
                           if l.startswith("agentprof:") and "requests recorded" not in l]
        try:
            with open(info["profile"]) as f:
                prof = json.load(f)
            run = prof.get("run", {})
            res["ringbuf_records_requests"] = run.get("records")
            res["ringbuf_drops"] = run.get("ringbuf_drops")
            res["run"] = run
            pg = 0
            for g in prof.get("groups", []):
                pg += (g.get("metrics", {}).get("pg_round_trips", {}) or {}).get("sum", 0) or 0
            res["pg_round_trips"] = pg
        except (OSError, ValueError) as e:
            res["profile_error"] = str(e)
        os.unlink(info["profile"]) if os.path.exists(info["profile"]) else None
    else:
        lines = lost = 0
        with open(info["out"], "rb") as f:
            for line in f:
                if line.startswith(b"req ") or line.startswith(b"close "):
                    lines += 1
                else:
                    m = re.search(rb"Lost (\d+) events", line)
                    if m:
                        lost += int(m.group(1))
        for m in re.finditer(r"Lost (\d+) events", err):
            lost += int(m.group(1))
        res["output_lines"] = lines
        res["lost_events"] = lost
        res["messages"] = [l for l in err.splitlines()
                           if l.strip() and "RLIMIT_MEMLOCK" not in l][:10]
        os.unlink(info["out"])
    return res


# ------------------------------------------------------------------ one run

def wait_quiet(limit):
    """Wait up to limit seconds for other processes' tracing programs to go."""
    t0 = time.monotonic()
    while foreign_tracing_progs(set()) and time.monotonic() - t0 < limit:
        time.sleep(1)
    return round(time.monotonic() - t0, 1)


def one_run(procs, wl, cfg, tag, tmp, bt_ok, duration=None, trace_pid=None):
    res = {"config": cfg}
    if wl.args.quiet_wait > 0:
        res["quiet_wait_s"] = wait_quiet(wl.args.quiet_wait)
    extra = wl.prepare_run(tag)
    tracer = tinfo = None
    if cfg != "A":
        if not trace_pid:
            trace_pid = wl.bpftrace_pid() if not is_agentprof(cfg) else wl.pid
        tracer, tinfo = start_tracer(procs, cfg, trace_pid, tmp, tag, bt_ok,
                                     shlex.split(wl.args.agentprof_args))
        if tracer is None:
            res["skipped"] = "bpftrace unavailable"
            return res
        res["attach_s"] = tinfo["attach_s"]
        res.update({k: tinfo[k] for k in STARTUP_KEYS if k in tinfo})
        if is_agentprof(cfg):
            log(f"   agentprof attached in {tinfo['attach_s']:.2f} s ({tinfo['hooks']}): "
                f"{tinfo['nprogs']} programs loaded in {fmt(tinfo['load_ms'], '{:.0f}')} ms, "
                f"{fmt(tinfo['verify_ms'], '{:.0f}')} ms in the verifier")
            for x in tinfo["fallbacks"]:
                log(f"   fallback: {x}")
    try:
        return measure(procs, wl, cfg, tracer, tinfo, extra, res, duration or wl.duration)
    finally:
        if tracer is not None and tracer.poll() is None:
            procs.stop(tracer, signal.SIGINT)


def run_wrk(procs, wl, extra, duration):
    wrk = procs.start(["wrk", "-t2", f"-c{wl.args.connections}", f"-d{duration}s",
                       "--latency"] + extra + [wl.url],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = wrk.communicate(timeout=duration + 60)
    procs.live.remove(wrk)
    w = parse_wrk(out)
    if w["rps"] is None:
        raise RuntimeError(f"wrk failed (exit {wrk.returncode}):\n{out.strip()[-800:]}")
    return w


def stats_window(procs, wl, ids, extra, duration):
    """The tracer's BPF programs' run time and calls over a load of their own,
    with run-time statistics on: {name: {type, run_time_ns, run_cnt}}, and
    the requests served meanwhile."""
    if not STATS.enable():
        return {}, None
    try:
        s0 = prog_stats(ids)
        w = run_wrk(procs, wl, extra, duration)
        s1 = prog_stats(ids)
    finally:
        STATS.restore()
    progs = {}
    for pid_, (name, typ, rt, cnt) in s1.items():
        rt0, cnt0 = (s0[pid_][2], s0[pid_][3]) if pid_ in s0 else (0, 0)
        e = progs.setdefault(name, {"type": typ, "run_time_ns": 0, "run_cnt": 0})
        e["run_time_ns"] += rt - rt0
        e["run_cnt"] += cnt - cnt0
    return progs, w["requests"]


def server_cpu_ticks(wl):
    """CPU of the server's processes (nginx: the master and its worker)."""
    ticks = [proc_cpu_ticks(p) for p in wl.cpu_pids()]
    return None if None in ticks else sum(ticks)


def measure(procs, wl, cfg, tracer, tinfo, extra, res, duration):
    time.sleep(0.5)  # settle (same for every config)
    ids = prog_ids_of(tracer.pid) if tracer else set()
    res["foreign_tracing_progs"] = foreign_tracing_progs(ids)
    c0 = proc_cpu_ticks(tracer.pid) if tracer else None
    srv0 = server_cpu_ticks(wl)
    t0 = time.monotonic()
    w = run_wrk(procs, wl, extra, duration)
    wall = time.monotonic() - t0
    srv1 = server_cpu_ticks(wl)
    res.update(w)
    if srv0 is not None and srv1 is not None and w["requests"]:
        res["server_cpu_us_per_req"] = (srv1 - srv0) / CLK_TCK * 1e6 / w["requests"]
    if tracer:
        c1 = proc_cpu_ticks(tracer.pid)
        res["tracer_cpu_pct"] = (c1 - c0) / CLK_TCK / wall * 100 if c1 is not None else None
        res["tracer_hwm_kb"] = proc_hwm_kb(tracer.pid)
        # Run-time statistics cost every program call two clock reads: they
        # are on only in a window of their own, after the measured one.
        sw = min(duration, STATS_SECONDS)
        res["progs"], res["stats_requests"] = stats_window(procs, wl, ids, extra, sw)
        res["stats_seconds"] = sw
        res.update(finish_tracer(procs, cfg, tracer, tinfo))
    return res


# ------------------------------------------------------------------ paced load

HOST_TAX_ROUNDS = 2


def host_tax_run(procs, wl, tmp, seconds, bt_ok):
    """agentprof tracing an idle process while the server runs untraced: what
    its hooks cost every other process on the host (the filter path). Runs
    alternate with untraced ones of the same length (A H A H A), and the ratio
    is against those: a 5 s run compared with the rounds minutes earlier
    moved by ±10%."""
    untraced = [one_run(procs, wl, "A", "hosttax_a0", tmp, bt_ok, duration=seconds)]
    runs = []
    idle = procs.start(["sleep", "1000000"])
    try:
        for i in range(HOST_TAX_ROUNDS):
            runs.append(one_run(procs, wl, "B", f"hosttax{i}", tmp, bt_ok, duration=seconds,
                                trace_pid=idle.pid))
            untraced.append(one_run(procs, wl, "A", f"hosttax_a{i + 1}", tmp, bt_ok,
                                    duration=seconds))
    finally:
        procs.stop(idle)
    ht = dict(runs[-1])
    ht["hooks"] = sorted({r["hooks"] for r in runs if r.get("hooks")})
    ht["progs"] = sum_progs(runs)
    ht["rps"] = mean([r.get("rps") for r in runs])
    ht["p99_ms"] = mean([r.get("p99_ms") for r in runs])
    ht["server_cpu_us_per_req"] = mean([r.get("server_cpu_us_per_req") for r in runs])
    ht["runs"] = runs
    ht["untraced_runs"] = untraced
    ht["rps_ratio_vs_A"] = ratio(ht["rps"], mean([r.get("rps") for r in untraced]))
    return ht


def paced_client(port, rate, seconds):
    """Closed-loop keep-alive client sending `rate` requests/s on schedule."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"GET /x/1 HTTP/1.1\r\nHost: bench\r\n\r\n"
    done = 0
    t0 = time.monotonic()
    n = int(rate * seconds)
    try:
        for i in range(n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s.sendall(req)
            buf = b""
            while not buf.endswith(b"\r\n\r\nok"):
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("tiny_server closed the connection")
                buf += chunk
            done += 1
    finally:
        s.close()
    return done, time.monotonic() - t0


def paced_run(procs, wl, cfg, tmp, rate, seconds, bt_ok):
    tracer, tinfo = start_tracer(procs, cfg, wl.pid, tmp, f"paced_{cfg}", bt_ok,
                                 shlex.split(wl.args.agentprof_args))
    if tracer is None:
        return {"skipped": "bpftrace unavailable"}
    time.sleep(0.5)
    c0, n0 = proc_cpu_ticks(tracer.pid), proc_runtime_ns(tracer.pid)
    done, wall = paced_client(wl.port, rate, seconds)
    c1, n1 = proc_cpu_ticks(tracer.pid), proc_runtime_ns(tracer.pid)
    res = {"rate": done / wall, "requests": done, "attach_s": tinfo["attach_s"],
           **{k: tinfo[k] for k in STARTUP_KEYS if k in tinfo},
           "tracer_cpu_pct_ticks": (c1 - c0) / CLK_TCK / wall * 100,
           "tracer_cpu_pct": (n1 - n0) / 1e9 / wall * 100,
           "tracer_hwm_kb": proc_hwm_kb(tracer.pid)}
    fin = finish_tracer(procs, cfg, tracer, tinfo)
    res["drops"] = fin.get("ringbuf_drops") if is_agentprof(cfg) else fin.get("lost_events")
    return res


# ------------------------------------------------------------------ summary

def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def ratio(a, b):
    return a / b if a is not None and b else None


def sum_progs(runs):
    """Per program, run time and calls summed over the runs' statistics
    windows, and run time per call."""
    progs = {}
    for r in runs:
        for name, e in (r.get("progs") or {}).items():
            t = progs.setdefault(name, {"type": e["type"], "run_time_ns": 0, "run_cnt": 0})
            t["run_time_ns"] += e["run_time_ns"]
            t["run_cnt"] += e["run_cnt"]
    for t in progs.values():
        t["ns_per_call"] = t["run_time_ns"] / t["run_cnt"] if t["run_cnt"] else None
    return progs


def summarize(rounds):
    by = {c: [r[c] for r in rounds if c in r and "skipped" not in r[c] and "error" not in r[c]]
          for c in CONFIGS}
    s = {"n_rounds": len(rounds)}
    for c in CONFIGS:
        runs = by[c]
        s[c] = {k: mean([r.get(k) for r in runs]) for k in
                ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_req", "tracer_cpu_pct",
                 "attach_s")}
        s[c]["requests"] = sum(r.get("requests") or 0 for r in runs)
        s[c]["errors"] = sum((r.get("errors") or 0) + (r.get("non_2xx") or 0) for r in runs)
        s[c]["tracer_peak_rss_kb"] = max([r.get("tracer_hwm_kb") or 0 for r in runs] or [0]) \
            or None
        s[c]["runs"] = len(runs)
    s["B"]["hooks"] = sorted({r["hooks"] for r in by["B"] if r.get("hooks")})
    a = by["A"]
    rps_a = [r["rps"] for r in a]
    s["A"]["rps_spread"] = (max(rps_a) - min(rps_a)) / mean(rps_a) if len(rps_a) > 1 else None
    for c in ("B", "C"):
        for k in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_req"):
            s[c][k + "_ratio"] = ratio(s[c][k], s["A"][k])
        # Paired per-round throughput ratios (same round's A), and for B the
        # mode each traced run used.
        paired = [r for r in rounds if c in r and "rps" in r[c] and "A" in r and "rps" in r["A"]]
        s[c]["rps_ratio_rounds"] = [ratio(r[c]["rps"], r["A"]["rps"]) for r in paired]
        if c == "B":
            s[c]["rps_ratio_rounds_hooks"] = [r[c].get("hooks") for r in paired]
        progs = sum_progs(by[c])
        # Program calls per request: over the statistics windows.
        reqs = sum(r.get("stats_requests") or 0 for r in by[c])
        s[c]["stats_requests"] = reqs
        for name, t in progs.items():
            t["calls_per_req"] = t["run_cnt"] / reqs if reqs else None
            t["ns_per_req"] = t["run_time_ns"] / reqs if reqs else None
        s[c]["progs"] = dict(sorted(progs.items(), key=lambda kv: -kv[1]["run_time_ns"]))
        s[c]["bpf_ns_per_req"] = (sum(t["run_time_ns"] for t in progs.values()) / reqs
                                  if reqs and progs else None)
    b = by["B"]
    # The tracer's records cover the measured window and the statistics one.
    reqs_b = (s["B"]["requests"] or 0) + (s["B"].get("stats_requests") or 0)
    if reqs_b:
        recs = sum(r.get("ringbuf_records_requests") or 0 for r in b)
        pg = sum(r.get("pg_round_trips") or 0 for r in b)
        s["B"]["request_records_per_req"] = recs / reqs_b
        s["B"]["pg_round_trips_per_req"] = pg / reqs_b
        s["B"]["ringbuf_records_per_req"] = (recs + pg) / reqs_b
        s["B"]["ringbuf_drops"] = sum(r.get("ringbuf_drops") or 0 for r in b)
        s["B"]["drops_per_req"] = s["B"]["ringbuf_drops"] / reqs_b
    reqs_c = (s["C"]["requests"] or 0) + (s["C"].get("stats_requests") or 0)
    if reqs_c:
        s["C"]["output_lines_per_req"] = sum(r.get("output_lines") or 0 for r in by["C"]) / reqs_c
        s["C"]["lost_events"] = sum(r.get("lost_events") or 0 for r in by["C"])
    s["attach"] = attach_summary(by["B"], by["C"])
    return s


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def attach_summary(b, c):
    """How long agentprof took to attach over the runs b: from its start to
    its tracing line (attach_s), and from its load line the time loading the
    programs (load_ms) and the verifier's part of it (verify_ms). Medians: one
    slow start (a page-cache miss, a busy CPU) should not move the figure."""
    return {
        "runs": len(b),
        "hooks": sorted({r["hooks"] for r in b if r.get("hooks")}),
        "attach_s_median": median([r.get("attach_s") for r in b]),
        "load_ms_median": median([r.get("load_ms") for r in b]),
        "verify_ms_median": median([r.get("verify_ms") for r in b]),
        "verify_share_median": median([r["verify_ms"] / r["load_ms"] for r in b
                                       if r.get("verify_ms") is not None and r.get("load_ms")]),
        "nprogs": sorted({r["nprogs"] for r in b if r.get("nprogs") is not None}),
        "largest": sorted({f"{r['largest_prog']} {r['largest_insns']}" for r in b
                           if r.get("largest_prog")}),
        "fallbacks": sorted({f for r in b for f in r.get("fallbacks") or []}),
        "bpftrace_attach_s_median": median([r.get("attach_s") for r in c]),
    }


def modes(hooks):
    """The mode(s) agentprof ran in, for printing next to its figures."""
    hs = sorted({h for h in hooks if h})
    return "mode: " + (" | ".join(hs) if hs else "unknown")


def fmt(v, f="{:.3f}", none="n/a"):
    return none if v is None else f.format(v)


def pct_delta(r):
    return None if r is None else (r - 1) * 100


def print_workload(key, wl_res):
    s = wl_res["summary"]
    A, B, C = s["A"], s["B"], s["C"]
    print(f"\n== {key}: {wl_res['title']}")
    print(f"   load: {wl_res['load']}; {s['n_rounds']} interleaved rounds A B C "
          f"({wl_res.get('elapsed_s', 'n/a')} s in all)")
    if A.get("rps_spread") is not None:
        print(f"   noise: untraced throughput spread across rounds (max-min)/mean = "
              f"{A['rps_spread'] * 100:.1f}%")
    print(f"   {'':10} {'req/s':>10} {'ratio':>7} {'p50 ms':>9} {'ratio':>7} {'p99 ms':>9} "
          f"{'ratio':>7} {'srv us/req':>10} {'tracer CPU':>10} {'peak RSS':>9}")
    for c in CONFIGS:
        x = s[c]
        if not x["runs"]:
            print(f"   {c} {CONFIG_NAMES[c]:8} (not run: {wl_res.get('skip_' + c, 'skipped')})")
            continue
        print(f"   {c} {CONFIG_NAMES[c]:8} {fmt(x['rps'], '{:10.1f}')} "
              f"{fmt(x.get('rps_ratio', 1.0 if c == 'A' else None), '{:7.3f}'):>7} "
              f"{fmt(x['p50_ms'], '{:9.3f}')} "
              f"{fmt(x.get('p50_ms_ratio', 1.0 if c == 'A' else None), '{:7.3f}'):>7} "
              f"{fmt(x['p99_ms'], '{:9.3f}')} "
              f"{fmt(x.get('p99_ms_ratio', 1.0 if c == 'A' else None), '{:7.3f}'):>7} "
              f"{fmt(x['server_cpu_us_per_req'], '{:10.1f}')} "
              f"{fmt(x['tracer_cpu_pct'], '{:9.1f}%', '-'):>10} "
              f"{fmt(x['tracer_peak_rss_kb'] and x['tracer_peak_rss_kb'] / 1024, '{:6.1f} MB', '-'):>9}"
              + (f"  [{modes(x['hooks'])}]" if c == "B" else ""))
    for c in ("B", "C"):
        rr = s[c].get("rps_ratio_rounds") or []
        if not rr:
            continue
        hk = s[c].get("rps_ratio_rounds_hooks")
        if c == "B" and len(set(hk)) > 1:
            # Modes differ between rounds: each ratio with its own.
            print(f"   B/A per round: " + "; ".join(f"{fmt(x)} [{modes([h])}]"
                                                    for x, h in zip(rr, hk)))
        else:
            print(f"   {c}/A per round: " + " ".join(fmt(x) for x in rr)
                  + (f"  [{modes(hk)}]" if c == "B" else ""))
    ref = wl_res.get("reference")
    if ref and B["runs"]:
        print(f"   reference: {ref['rps_ratio']:.2f} x untraced [{ref['mode']}]; this run "
              f"{fmt(B.get('rps_ratio'))} x [{modes(B['hooks'])}]")
    at = s.get("attach")
    if at and at["runs"]:
        print(f"   attach (median of {at['runs']}): agentprof {fmt(at['attach_s_median'], '{:.2f}')} s "
              f"to its tracing line, {', '.join(str(n) for n in at['nprogs']) or 'n/a'} programs "
              f"loaded in {fmt(at['load_ms_median'], '{:.0f}')} ms of which "
              f"{fmt(at['verify_ms_median'], '{:.0f}')} ms in the verifier "
              f"({fmt(at['verify_share_median'], '{:.0%}')}); largest "
              f"{', '.join(at['largest']) or 'n/a'} instructions processed [{modes(at['hooks'])}]"
              + (f"; bpftrace {at['bpftrace_attach_s_median']:.2f} s"
                 if at.get("bpftrace_attach_s_median") is not None else ""))
        for f in at["fallbacks"]:
            print(f"   agentprof fallback: {f}")
    if B["runs"]:
        print(f"   agentprof: {fmt(B.get('request_records_per_req'))} request records/req + "
              f"{fmt(B.get('pg_round_trips_per_req'))} PG round-trip records/req = "
              f"{fmt(B.get('ringbuf_records_per_req'))} ring-buffer records/req; "
              f"drops {B.get('ringbuf_drops', 'n/a')} ({fmt(B.get('drops_per_req'), '{:.2%}')} "
              f"of requests); BPF {fmt(B.get('bpf_ns_per_req'), '{:.0f}')} ns/req "
              f"[{modes(B['hooks'])}]")
    if C["runs"]:
        print(f"   bpftrace:  {fmt(C.get('output_lines_per_req'))} output lines/req; "
              f"lost events {C.get('lost_events', 'n/a')}; BPF "
              f"{fmt(C.get('bpf_ns_per_req'), '{:.0f}')} ns/req")
    for c in ("B", "C"):
        progs = s[c].get("progs") or {}
        if not progs:
            continue
        print(f"   BPF programs of {CONFIG_NAMES[c]} (kernel bpf_stats over each traced run's statistics window; "
              f"calls from every process on the host, the handlers filter by pid)"
              + (f" [{modes(B['hooks'])}]" if c == "B" else "") + ":")
        print(f"     {'program':18} {'type':11} {'calls':>11} {'calls/req':>9} {'ns/call':>8} "
              f"{'ns/req':>8} {'total ms':>9}")
        for name, t in progs.items():
            if not t["run_cnt"]:
                continue
            print(f"     {name:18} {t['type'][:11]:11} {t['run_cnt']:11d} "
                  f"{fmt(t['calls_per_req'], '{:9.2f}')} {fmt(t['ns_per_call'], '{:8.0f}')} "
                  f"{fmt(t['ns_per_req'], '{:8.0f}')} {t['run_time_ns'] / 1e6:9.1f}")
        idle = [n for n, t in progs.items() if not t["run_cnt"]]
        if idle:
            print(f"     not called: {', '.join(idle)}")
    msgs = sorted({m for r in wl_res["rounds"] for c in ("B", "C") if c in r
                   for m in r[c].get("messages", [])})
    for m in msgs[:8]:
        print(f"   note: {m}")
    foreign = {}
    for r in wl_res["rounds"]:
        for c in CONFIGS:
            for n, k in (r.get(c, {}).get("foreign_tracing_progs") or {}).items():
                foreign[n] = max(foreign.get(n, 0), k)
    if foreign:
        print(f"   WARNING: tracing BPF programs of other processes were loaded during the runs "
              f"({sum(foreign.values())}: {', '.join(sorted(foreign)[:8])}"
              f"{', ...' if len(foreign) > 8 else ''}): they tax every config and add noise")


def evaluate_targets(res):
    t = []
    for key in ("tiny", "demo"):
        w = res["workloads"].get(key)
        if not w or "summary" not in w:
            continue
        s = w["summary"]

        def add(name, target, measured, ok, note="", _m=modes(s["B"]["hooks"])):
            # Every figure here is agentprof's: with the mode it ran in.
            t.append({"target": name, "goal": target, "measured": measured, "met": ok,
                      "note": f"{note}; {_m}" if note else _m})
        progs = s["B"].get("progs") or {}
        sw = progs.get("ap_sched_switch") or progs.get("ap_raw_switch")
        if sw and sw["ns_per_call"] is not None:
            add(f"{key}: ap_sched_switch ns/call", f"<= {T_SWITCH_NS}",
                round(sw["ns_per_call"], 1), sw["ns_per_call"] <= T_SWITCH_NS)
        # Syscall tracepoints, and the socket tracepoints that replace them
        # for reads and writes on kernels that have them.
        io = {n: p for n, p in progs.items()
              if p["type"] == "tracepoint" or n in ("ap_sock_recv", "ap_sock_send")}
        over = {n: round(p["ns_per_call"]) for n, p in io.items()
                if p["ns_per_call"] is not None and p["ns_per_call"] > T_SYSCALL_NS}
        if any(p["run_cnt"] for p in io.values()):
            add(f"{key}: every syscall/socket I/O handler ns/call", f"<= {T_SYSCALL_NS}",
                over or "all within", not over)
        rr, pr = s["B"].get("rps_ratio"), s["B"].get("p99_ms_ratio")
        spread = s["A"].get("rps_spread")
        note = f"untraced spread {spread * 100:.1f}%" if spread is not None else ""
        if rr is not None:
            lim = T_TINY_LOSS if key == "tiny" else T_DEMO_LOSS
            add(f"{key}: throughput loss", f"<= {lim:.0%}", f"{(1 - rr) * 100:.1f}%",
                1 - rr <= lim, note)
        if key == "demo" and pr is not None:
            add("demo: p99 increase", f"<= {T_DEMO_P99:.0%}", f"{(pr - 1) * 100:+.1f}%",
                pr - 1 <= T_DEMO_P99, note)
        rec = s["B"].get("request_records_per_req")
        if rec is not None:
            pg = s["B"].get("pg_round_trips_per_req") or 0
            tot = s["B"]["ringbuf_records_per_req"]
            add(f"{key}: ring-buffer records/req", f"<= 2 + PG round trips ({2 + pg:.2f})",
                round(tot, 3), tot <= T_RECORDS + pg + 1e-9,
                f"drops {s['B'].get('ringbuf_drops')}")
        rc = s["C"].get("rps_ratio")
        if rr is not None and rc is not None:
            add(f"{key}: lower overhead than bpftrace (throughput)", "B/A > C/A",
                f"B/A {rr:.3f} vs C/A {rc:.3f}", rr > rc)
        pc = s["C"].get("p99_ms_ratio")
        if pr is not None and pc is not None:
            add(f"{key}: lower overhead than bpftrace (p99)", "B p99 <= C p99",
                f"B/A {pr:.3f} vs C/A {pc:.3f}", pr <= pc)
    p = res.get("paced")
    if p and p.get("B", {}).get("tracer_cpu_pct") is not None:
        b = p["B"]
        t.append({"target": "agentprof userspace CPU at 1000 req/s",
                  "goal": f"<= {T_USER_CPU_PCT}% of a core",
                  "measured": f"{b['tracer_cpu_pct']:.2f}% at {b['rate']:.0f} req/s",
                  "met": b["tracer_cpu_pct"] <= T_USER_CPU_PCT,
                  "note": modes([b.get("hooks")])})
    return t


# ------------------------------------------------------------------ main

def check_bpftrace(tmp):
    if not shutil.which("bpftrace"):
        return False, "bpftrace not installed (tools/deps.sh installs it)"
    try:
        p = subprocess.run(["bpftrace", "--no-warnings", "-e",
                            "tracepoint:sched:sched_switch { @n = count(); exit(); }"],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bpftrace does not run: {e}"
    if p.returncode != 0:
        return False, "bpftrace does not run here: " + (p.stderr.strip() or p.stdout.strip())[-400:]
    return True, subprocess.run(["bpftrace", "--version"], capture_output=True,
                                text=True).stdout.strip()


def git(*a):
    try:
        return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/run.sh",
                                description="agentprof overhead benchmark (A untraced, "
                                            "B agentprof, C bpftrace; interleaved rounds)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved A B C rounds (3)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 5 s each")
    p.add_argument("--tiny-seconds", type=int, default=10, help="wrk duration, tiny server (10)")
    p.add_argument("--demo-seconds", type=int, default=15, help="wrk duration, demo agent (15)")
    p.add_argument("--nginx-seconds", type=int, default=10, help="wrk duration, nginx (10)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma list of {','.join(WORKLOADS)} (all of them)")
    p.add_argument("--llm-scale", type=float, default=0.05, help="fake LLM latency scale (0.05)")
    p.add_argument("--paced-rate", type=int, default=1000,
                   help="req/s of the paced run that measures userspace CPU (1000; 0 = skip)")
    p.add_argument("--paced-seconds", type=int, default=5)
    p.add_argument("--no-bpftrace", action="store_true", help="skip config C")
    p.add_argument("--baseline", metavar="BINARY",
                   help="config C traces with this agentprof (an earlier build) instead of "
                        "bpftrace: a change's cost side by side")
    p.add_argument("--agentprof-args", default="", metavar="ARGS",
                   help="more options for agentprof record in B, e.g. '--sample 4'")
    p.add_argument("--no-host-tax", dest="host_tax", action="store_false",
                   help="skip the run with agentprof tracing an idle process")
    p.add_argument("--quiet-wait", type=int, default=0, metavar="S",
                   help="before each run, wait up to S s while other processes have tracing "
                        "BPF programs loaded (they tax every config; default 0: warn only)")
    p.add_argument("--out", default=os.path.join(BENCH, "out"), help="results directory")
    a = p.parse_args(argv)
    if a.quick:
        a.rounds, a.tiny_seconds, a.demo_seconds, a.nginx_seconds, a.paced_seconds = 1, 5, 5, 5, 3
    if a.rounds < 1 or min(a.tiny_seconds, a.demo_seconds, a.nginx_seconds) < 1:
        p.error("rounds and durations must be >= 1")
    if a.baseline:
        if not os.access(a.baseline, os.X_OK):
            p.error(f"--baseline {a.baseline}: not an executable")
        BINARIES["C"] = os.path.abspath(a.baseline)
        CONFIG_NAMES["C"] = "baseline"
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    for w in a.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}")
    return a


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        log("needs root (BPF, bpf_stats)")
        return 2
    for exe in (AGENTPROF, TINY):
        if not os.access(exe, os.X_OK):
            log(f"{exe} missing: run `make -C {ROOT} all` (bench/run.sh builds tiny_server)")
            return 2
    for tool in ("wrk", "bpftool"):
        if not shutil.which(tool):
            log(f"{tool} not found: run tools/deps.sh")
            return 2

    # SIGINT may arrive ignored (background job of a script): handle it
    # explicitly, which also gives every child the default disposition back.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_term(sig, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    t_start = time.monotonic()
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="agentprof-bench.")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    sha = git("rev-parse", "--short", "HEAD") or "nogit"
    res = {
        "format": "agentprof-bench", "version": 1,
        "git": {"sha": sha, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))},
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                 "agentprof_sha256": sha256(AGENTPROF)},
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "workloads": {}, "attach": {}, "notes": [],
    }
    rc = 0
    workloads = []
    try:
        bt_ok, bt_info = (False, "skipped (--no-bpftrace)") if args.no_bpftrace \
            else check_bpftrace(tmp)
        res["host"]["bpftrace"] = bt_info
        if not bt_ok:
            res["notes"].append(f"config C not run: {bt_info}")
            log(f"config C not run: {bt_info}")
        # Off while throughput and latency are measured: see measure().
        if STATS.enable():
            STATS.restore()
        res["bpf_stats"] = STATS.method or "unavailable: BPF run times not measured"
        if not STATS.method:
            res["notes"].append("BPF run-time statistics unavailable: no ns/call figures")
        log(f"bpf stats: {res['bpf_stats']}; temp dir {tmp}")

        for key in args.workloads:
            wl = WORKLOADS[key](procs, tmp, args)
            workloads.append(wl)
            wres = res["workloads"][key] = {"title": wl.title, "rounds": []}
            if getattr(wl, "reference", None):
                wres["reference"] = wl.reference
            t_wl = time.monotonic()
            try:
                log(f"{key}: starting")
                wl.start()
                wres["load"] = wl.load_desc()
                wres["target_pid"] = wl.pid
                wres["bpftrace_pid"] = wl.bpftrace_pid()
                wres["server_pids"] = wl.cpu_pids()
                # Warm-up: caches, JIT of the load path, connection pools.
                one_run(procs, wl, "A", f"{key}_warmup", tmp, bt_ok, duration=3)
                for rnd in range(1, args.rounds + 1):
                    rres = {"round": rnd}
                    for cfg in round_order(rnd):
                        tag = f"{key}_{rnd}_{cfg}"
                        log(f"{key}: round {rnd}/{args.rounds} {cfg} ({CONFIG_NAMES[cfg]})")
                        try:
                            rres[cfg] = one_run(procs, wl, cfg, tag, tmp, bt_ok)
                        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError,
                                KeyError) as e:
                            log(f"{key}: {cfg} failed: {e}")
                            rres[cfg] = {"config": cfg, "error": str(e)}
                            rc = 1
                        r = rres[cfg]
                        if "rps" in r:
                            log(f"   {r['rps']:.1f} req/s p50 {fmt(r['p50_ms'])} ms "
                                f"p99 {fmt(r['p99_ms'])} ms"
                                + (f", tracer {r['tracer_cpu_pct']:.1f}% CPU"
                                   if r.get("tracer_cpu_pct") is not None else "")
                                + (f" [{modes([r.get('hooks')])}]" if cfg == "B" else ""))
                    wres["rounds"].append(rres)
                if key == "tiny" and args.host_tax:
                    log("tiny: host tax (agentprof tracing an idle process)")
                    try:
                        res["host_tax"] = host_tax_run(procs, wl, tmp, args.paced_seconds,
                                                       bt_ok)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        res["host_tax"] = {"error": str(e)}
                        rc = 1
                if key == "tiny" and args.paced_rate > 0:
                    pres = res["paced"] = {"load": f"1 keep-alive connection, "
                                                    f"{args.paced_rate} req/s paced, "
                                                    f"{args.paced_seconds} s"}
                    for cfg in ("B", "C"):
                        log(f"tiny: paced {args.paced_rate} req/s, {CONFIG_NAMES[cfg]}")
                        try:
                            pres[cfg] = paced_run(procs, wl, cfg, tmp, args.paced_rate,
                                                  args.paced_seconds, bt_ok)
                        except (RuntimeError, OSError) as e:
                            pres[cfg] = {"error": str(e)}
                            rc = 1
                wres["summary"] = summarize(wres["rounds"])
                res["attach"][key] = wres["summary"]["attach"]
                if not bt_ok:
                    wres["skip_C"] = bt_info
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
                log(f"{key}: failed: {e}")
                wres["error"] = str(e)
                rc = 1
            finally:
                wl.stop()
                # What a workload adds to `make bench`.
                wres["elapsed_s"] = round(time.monotonic() - t_wl, 1)
    except (KeyboardInterrupt, Stop):
        log("interrupted: cleaning up")
        rc = 130
    finally:
        procs.stop_all()
        for wl in workloads:
            try:
                wl.stop()
            except Exception as e:  # cleanup must go on
                log(f"stopping {wl.key}: {e}")
        STATS.restore()
        shutil.rmtree(tmp, ignore_errors=True)

    if rc == 130:
        return rc
    res["targets"] = evaluate_targets(res)
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"results-{sha}-{stamp}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")

    print(f"agentprof overhead benchmark  {sha}{' (dirty tree)' if res['git']['dirty'] else ''}"
          f"  {res['timestamp']}  kernel {res['host']['kernel']}, {res['host']['cpus']} CPUs")
    print(f"bpf stats: {res['bpf_stats']}; bpftrace: {res['host']['bpftrace']}")
    print("ratios are traced/untraced means over the rounds; tracer CPU is % of one core")
    for key, w in res["workloads"].items():
        if "summary" in w:
            print_workload(key, w)
        else:
            print(f"\n== {key}: not measured: {w.get('error')}")
    ht = res.get("host_tax")
    if ht:
        print("\n== host tax: agentprof tracing an idle process, tiny server untraced "
              f"({HOST_TAX_ROUNDS} runs of {res['config']['paced_seconds']} s between "
              f"untraced ones)")
        if ht.get("rps"):
            print(f"   {ht['rps']:.1f} req/s = {fmt(ht.get('rps_ratio_vs_A'))} x untraced "
                  f"[{modes(ht['hooks'])}] "
                  f"(the untraced runs around them); p99 {fmt(ht['p99_ms'])} ms; server "
                  f"{fmt(ht.get('server_cpu_us_per_req'), '{:.1f}')} us/req")
            progs = sorted(((n, t) for n, t in (ht.get("progs") or {}).items()
                            if t["run_cnt"]), key=lambda kv: -kv[1]["run_time_ns"])
            print("   ns/call of the filter path (calls by untraced processes only): " +
                  ", ".join(f"{n} {t['ns_per_call']:.0f}" for n, t in progs[:10]))
        else:
            print(f"   {ht.get('error')}")
    p = res.get("paced")
    if p:
        print(f"\n== userspace CPU at a fixed rate ({p['load']}, tiny server)")
        for c in ("B", "C"):
            x = p.get(c, {})
            if "tracer_cpu_pct" in x:
                print(f"   {CONFIG_NAMES[c]:9} {x['rate']:.0f} req/s: {x['tracer_cpu_pct']:.2f}% "
                      f"of a core (schedstat; utime+stime {x['tracer_cpu_pct_ticks']:.1f}%), peak RSS {x['tracer_hwm_kb'] / 1024:.1f} MB, "
                      f"drops/lost {x.get('drops')}"
                      + (f"  [{modes([x.get('hooks')])}]" if c == "B" else ""))
            else:
                print(f"   {CONFIG_NAMES[c]:9} {x.get('skipped') or x.get('error')}")
    if res["attach"]:
        print("\n== attach time: agentprof record started to its `tracing` line; load and verifier "
              "from its `BPF programs loaded` line (medians over the B runs)")
        print(f"   {'workload':9} {'runs':>4} {'attach s':>8} {'load ms':>8} {'verify ms':>9} "
              f"{'verifier':>8} {'bpftrace s':>10}  mode")
        for key, at in res["attach"].items():
            print(f"   {key:9} {at['runs']:4d} {fmt(at['attach_s_median'], '{:8.2f}'):>8} "
                  f"{fmt(at['load_ms_median'], '{:8.0f}'):>8} "
                  f"{fmt(at['verify_ms_median'], '{:9.0f}'):>9} "
                  f"{fmt(at['verify_share_median'], '{:8.0%}'):>8} "
                  f"{fmt(at['bpftrace_attach_s_median'], '{:10.2f}', '-'):>10}  "
                  f"{' | '.join(at['hooks']) or 'unknown'}"
                  + (f" (+{len(at['fallbacks'])} fallback line(s) above)" if at["fallbacks"]
                     else ""))
    print("\n== issue 6 targets")
    for t in res["targets"]:
        mark = "ok  " if t["met"] else "MISS"
        print(f"   {mark} {t['target']}: {t['measured']} (goal {t['goal']})"
              + (f"  [{t['note']}]" if t["note"] else ""))
    for n in res["notes"]:
        print(f"   note: {n}")
    print(f"\nresults: {os.path.relpath(path, ROOT)}  ({res['elapsed_s']} s)")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
