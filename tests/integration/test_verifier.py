#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Verifier headroom: every BPF program, in every mode this kernel supports,
verifies within the budget (250,000 processed instructions, a quarter of the
kernel's limit), and `record` loads its programs once, in the best mode,
without a fallback.

`agentprof check -v` loads each mode and prints a table per mode
(src/loader.c); this test reads it, so a change that brings a program near
the verifier's limit fails here on any kernel the suite runs on, not on the
next patch release of a production host.
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentprof_test as at  # noqa: E402

BUDGET = 250_000
MODE_RE = re.compile(r"^mode (.+?): (\d+) programs loaded in (\d+) ms")
FAIL_RE = re.compile(r"^mode (.+?): NOT LOADED: (.*)$")
PROG_RE = re.compile(r"^  (ap_\w+)\s+(\d+)\s+[\d.]+%\s+(\d+)\s+([\d.]+)")


def parse_check(text):
    """{mode: {prog: insns}} and [(mode, reason)] of the modes that did not load."""
    modes, failed, cur = {}, [], None
    for line in text.splitlines():
        m = MODE_RE.match(line)
        if m:
            cur = modes.setdefault(m.group(1), {})
            continue
        m = FAIL_RE.match(line)
        if m:
            failed.append((m.group(1), m.group(2)))
            cur = None
            continue
        m = PROG_RE.match(line)
        if m and cur is not None:
            cur[m.group(1)] = int(m.group(2))
    return modes, failed


def kernel_has_sock_tps():
    return os.path.isdir("/sys/kernel/tracing/events/sock/sock_recv_length") or \
        os.path.isdir("/sys/kernel/debug/tracing/events/sock/sock_recv_length")


def test_check():
    p = subprocess.run([at.AGENTPROF, "check", "-v"], capture_output=True, text=True,
                       timeout=300)
    at.check("check -v exits 0", p.returncode == 0, "rc=%d\n%s" % (p.returncode, p.stdout))
    modes, failed = parse_check(p.stdout)
    at.check("every supported mode loaded", not failed, "%s" % failed)
    at.check("at least two modes loaded (best, and the fallbacks)", len(modes) >= 2,
             "%s" % list(modes))
    if kernel_has_sock_tps():
        at.check("socket-tracepoint mode is among them",
                 any("socket tracepoints" in m for m in modes), "%s" % list(modes))
    at.check("a syscall-tracepoint mode is among them",
             any("syscall tracepoints" in m for m in modes), "%s" % list(modes))
    at.check("a raw_tp mode is among them", any(m.startswith("raw_tp") for m in modes),
             "%s" % list(modes))
    for mode, progs in modes.items():
        over = {n: i for n, i in progs.items() if i > BUDGET or i <= 0}
        at.check("mode %s: %d programs, each within %d instructions (largest %s)"
                 % (mode, len(progs), BUDGET,
                    max(progs.items(), key=lambda kv: kv[1]) if progs else None),
                 progs and not over, "over budget or unreported: %s" % over)
    # The programs that carry the request path must be in each table.
    for mode, progs in modes.items():
        want = ["ap_sock_recv", "ap_sock_send"] if "socket tracepoints" in mode \
            else ["ap_read_x", "ap_write_x"]
        missing = [w for w in want if w not in progs]
        at.check("mode %s: request-path programs listed" % mode, not missing,
                 "missing %s" % missing)


def test_record_loads_once():
    """The best mode loads on its own: no fallback line, one load line."""
    with tempfile.TemporaryDirectory() as tmp:
        req, prof = os.path.join(tmp, "r.jsonl"), os.path.join(tmp, "p.json")
        ap = at.start_agentprof(["-d", "30"], req, prof)
        rc, out, err = at.stop_agentprof(ap)
    at.check("record exits 0", rc == 0, "rc=%s\n%s" % (rc, err))
    loads = [l for l in err.splitlines() if re.search(r"BPF programs loaded in", l)]
    at.check("record loads the programs once", len(loads) == 1, "%s" % loads)
    rejected = [l for l in err.splitlines() if "rejected" in l]
    at.check("no program rejected, no fallback taken", not rejected, "%s" % rejected)
    m = re.search(r"largest (\w+), (\d+) instructions processed", err)
    at.check("record names its largest program within the budget",
             m and int(m.group(2)) <= BUDGET, "%s" % (m and m.group(0)))


def main():
    test_check()
    test_record_loads_once()
    at.report()


if __name__ == "__main__":
    main()
