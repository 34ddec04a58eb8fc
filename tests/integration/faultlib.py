#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Helpers shared by the tests that stop, kill and starve agentprof and what
it traces (test_lose_nothing.py, test_inject.py): processes started and
cleaned up, `agentprof record` with any arguments, JSON-lines files checked
line by line."""

import json
import os
import socket
import subprocess

import agentprof_test as at

_procs = []


def track(p):
    """Remembers a process so that cleanup() kills it if it is still running."""
    _procs.append(p)
    return p


def cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on now (the kernel's pick)."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_ap(args, stdout=subprocess.PIPE, timeout=None):
    """`agentprof record ARGS`, returned once tracing (stdout and stderr collected)."""
    cmd = [at.AGENTPROF, "record"] + [str(a) for a in args]
    p = track(subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                               cwd=at.ROOT))
    p._out = at._Lines(p.stdout) if stdout == subprocess.PIPE else None
    p._err = at._Lines(p.stderr)
    if p._err.wait_for(lambda l: l.startswith("agentprof: tracing"),
                       timeout or at.START_TIMEOUT_S) is None:
        if p.poll() is None:
            p.kill()
        p.wait()
        raise RuntimeError("agentprof did not start tracing: %s\n%s" % (cmd, p._err.text(1)))
    return p


def wait_exit(p, timeout=30):
    """p's exit status, or None after killing it when it takes longer than timeout s."""
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def jsonl_state(path):
    """(whole lines parsed, problem or None) of a JSON-lines file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return 0, str(e)
    if data and not data.endswith(b"\n"):
        return 0, "ends mid-line: ...%r" % data[-60:]
    n = 0
    for line in data.splitlines():
        try:
            json.loads(line)
        except ValueError:
            return n, "line %d does not parse: %r" % (n + 1, line[:80])
        n += 1
    return n, None


def load_profile(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rss_kib(pid):
    """VmRSS of pid in KiB (0 if gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0
