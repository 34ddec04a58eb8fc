#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""End to end: `agentprof record --live` (issue 18).

The C test server (tests/servers/cpu_server.c) serves two routes under a
steady workload: /cpu/:id burning 4 ms of CPU, /stream/:id streaming 2
chunks of 1 ms each. Then:

  - under a pseudo-terminal (a private tmux server, 130x40): the screen
    shows both routes with requests/s near what the driver sent in the last
    second, CPU per request near the 4 ms the server burns (its own
    clock), and the screen is redrawn in place (the title once on the
    screen, its clock moving on); Ctrl-C ends it with the full table;
  - with stdout a pipe: plain timestamped lines with the routes, no
    terminal escape sequence.

Needs root (record) and tmux (tools/deps.sh).
"""

import http.client
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import agentprof_test as at
import drive

PORT = 19230
CPU_MS = 4
# A private tmux server whose socket lives and dies with the test's directory
# (kill-server leaves a named socket behind in /tmp/tmux-UID).
SOCKET = None


class Load:
    """Requests in a loop on two keep-alive connections; counts them per second."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.done = []  # (monotonic time, route) per finished request
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in ("cpu", "stream")]
        for t in self.threads:
            t.start()

    def run(self, kind):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.stop.is_set():
            i += 1
            rid = "live-%s-%d" % (kind, i)
            path = drive.cpu_path(rid, CPU_MS) if kind == "cpu" else drive.stream_path(rid, 2, 2)
            rec = drive.request(conn, "GET", path, rid, "simple")
            if rec["error"]:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            with self.lock:
                self.done.append((time.monotonic(), "/%s/:id" % kind))
            time.sleep(0.002)

    def count(self, route, start, end):
        with self.lock:
            return sum(1 for t, r in self.done if r == route and start < t <= end)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-S", SOCKET] + list(args), capture_output=True, text=True,
                          check=check)


def screen():
    return tmux("capture-pane", "-p", "-t", "live").stdout


def row(text, route):
    """(req/s, lat p50, lat p95, cpu/req) of route's line on the screen, or None."""
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 8 and f[2] == route:
            try:
                return tuple(float(x) for x in f[-4:])
            except ValueError:
                return None
    return None


def wait_screen(pred, timeout=30):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen()
        if pred(text):
            return text
        time.sleep(0.3)
    return text


TITLE = re.compile(r"--live\s+(\S+)\s+last ([\d.]+) s: .*?(\d+) requests since")


def intervals(n, timeout=20):
    """The screen at each of n + 1 redraws: [(monotonic time seen, text, interval s)]."""
    frames, last = [], None
    deadline = time.monotonic() + timeout
    while len(frames) < n + 1 and time.monotonic() < deadline:
        text = screen()
        m = TITLE.search(text)
        if m and m.group(0) != last:
            last = m.group(0)
            frames.append((time.monotonic(), text, float(m.group(2))))
        time.sleep(0.02)
    return frames


def check_tty(srv_pid, load):
    cmd = "%s record -p %d --live" % (at.AGENTPROF, srv_pid)
    tmux("new-session", "-d", "-s", "live", "-x", "130", "-y", "40", cmd)
    tmux("set-option", "-t", "live", "remain-on-exit", "on")
    try:
        text = wait_screen(lambda t: row(t, "/cpu/:id") and row(t, "/stream/:id")
                           and row(t, "/cpu/:id")[0] > 0, timeout=at.START_TIMEOUT_S + 10)
        if not at.check("the screen shows both routes", row(text, "/cpu/:id")
                        and row(text, "/stream/:id"), text):
            return
        # Intervals end when the title changes: over several of them the
        # requests the screen counted match what the driver finished.
        # The first frame was up before we looked: counting starts at the second.
        frames = intervals(5)
        if not at.check("five redraws in 20 s", len(frames) == 6, len(frames)):
            return
        text = frames[-1][1]
        print(text)
        span = (frames[1][0], frames[-1][0])
        for route in ("/cpu/:id", "/stream/:id"):
            shown = sum(row(t, route)[0] * secs for _, t, secs in frames[2:] if row(t, route))
            sent = load.count(route, *span)
            at.check("%s: %.0f requests on screen over %.1f s, %d sent" % (
                route, shown, span[1] - span[0], sent),
                sent > 0 and 0.75 * sent <= shown <= 1.25 * sent, frames[-1][1])
        cpu = row(text, "/cpu/:id")
        at.check("/cpu/:id CPU per request %.2f ms, the server burns %d" % (cpu[3], CPU_MS),
                 at.near(cpu[3] * 1e6, CPU_MS * 1e6, rel=0.3, abs_ns=1e6), cpu)
        at.check("/cpu/:id p95 at least its CPU", cpu[2] >= cpu[3] * 0.9, cpu)
        clock = re.search(r"--live\s+(\d\d:\d\d:\d\d)", text)
        time.sleep(1.5)
        later = screen()
        clock2 = re.search(r"--live\s+(\d\d:\d\d:\d\d)", later)
        at.check("redrawn in place: one title on the screen, its clock moving on",
                 later.count("agentprof record --live") == 1 and clock and clock2
                 and clock.group(1) != clock2.group(1), later)
        tmux("send-keys", "-t", "live", "C-c")
        text = wait_screen(lambda t: "WHERE THE TIME GOES" in t, timeout=20)
        at.check("Ctrl-C: the full table at exit", "WHERE THE TIME GOES" in text
                 and "requests recorded" in text, text)
    finally:
        tmux("kill-server", check=False)


def check_plain(srv_pid):
    r = subprocess.run([at.AGENTPROF, "record", "-p", str(srv_pid), "--live", "-d", "4", "-q"],
                       capture_output=True, text=True, timeout=at.START_TIMEOUT_S + 30)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    at.check("plain: exit 0", r.returncode == 0, r.stderr)
    at.check("plain: no terminal escapes", "\033" not in r.stdout, repr(r.stdout[:200]))
    routes = [l for l in lines if re.match(r"\d\d:\d\d:\d\d \S+ +GET +/cpu/:id ", l)]
    at.check("plain: a timestamped /cpu/:id line a second (%d)" % len(routes),
             2 <= len(routes) <= 5, r.stdout)


def main():
    global SOCKET
    if not shutil.which("tmux"):
        at.check("tmux installed (tools/deps.sh)", False, "no tmux")
        at.report()
    tmp = tempfile.mkdtemp(prefix="agentprof-live-")
    SOCKET = os.path.join(tmp, "tmux.sock")
    srv, port = at.start_server("c", None, port=PORT)
    load = Load(port)
    try:
        check_tty(srv.pid, load)
        check_plain(srv.pid)
    finally:
        load.close()
        at.stop_server(srv)
        shutil.rmtree(tmp, ignore_errors=True)
    at.report()


if __name__ == "__main__":
    main()
