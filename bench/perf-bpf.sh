#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Where one of agentprof's BPF programs spends its time, while it runs:
#
#   bench/perf-bpf.sh PROG PID [SECONDS]
#
# Samples PID's CPU with perf (cpu-clock, call graphs) for SECONDS (5), then
# prints, for the samples inside PROG (e.g. ap_sock_recv):
#   - the leaf functions: the program's own code, and the kernel helpers it
#     called (bpf_ringbuf_output, copy_from_user_nofault, htab lookups, ...);
#   - its samples per line of bpf/ source (bench/bpf_lines), a helper's on the
#     line that calls it, its global functions' (py_sync, ...) included.
# Run it as root with agentprof tracing PID and a load on PID (wrk, the demo).
# Scheduler hooks run with interrupts off: cpu-clock sampling cannot see
# inside them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROG=${1:?usage: perf-bpf.sh PROG PID [SECONDS]}
PID=${2:?usage: perf-bpf.sh PROG PID [SECONDS]}
SECS=${3:-5}
LINES=$ROOT/build/bench/bpf_lines

for tool in perf bpftool; do
	command -v $tool >/dev/null || { echo "perf-bpf: $tool not found: apt-get install linux-perf bpftool" >&2; exit 1; }
done
make -s -C "$ROOT" build/bench/bpf_lines
ID=$(bpftool prog show name "$PROG" -j | /usr/bin/python3 -c '
import json, sys
p = json.load(sys.stdin)
print((p[-1] if isinstance(p, list) else p)["id"])' 2>/dev/null) || {
	echo "perf-bpf: no loaded program named $PROG: is agentprof running?" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
perf record -q -e cpu-clock -F 4999 -g -p "$PID" -o "$TMP/perf.data" -- sleep "$SECS" 2>/dev/null
perf script -i "$TMP/perf.data" -F ip,sym,symoff 2>/dev/null > "$TMP/stacks"

echo "== leaf functions of the samples under $PROG"
# perf script prints a sample as a block of frames, leaf first.
awk -v prog="_$PROG" '
	BEGIN { RS = ""; FS = "\n" }
	{ n++; for (i = 1; i <= NF; i++) if (index($i, prog)) {
		split($1, f, " "); leaf = f[2]; sub(/\+0x[0-9a-f]+$/, "", leaf); c[leaf]++; t++; break } }
	END { printf "%d of %d samples (%.1f%%)\n", t, n, n ? 100 * t / n : 0
	      for (k in c) printf "%7d %s\n", c[k], k | "sort -rn | head -25" }' "$TMP/stacks"

echo "== $PROG's samples per source line (its global functions' too; a helper's samples on the line that calls it)"
# The first BPF frame of each sample under PROG: "FUNC 0xOFFSET".
awk -v prog="_$PROG+" 'BEGIN { RS = ""; FS = "\n" }
	index($0, prog) { for (i = 1; i <= NF; i++) { split($i, f, " ")
		if (f[2] ~ /^bpf_prog_[0-9a-f]+_/) { sym = f[2]; sub(/^bpf_prog_[0-9a-f]+_/, "", sym)
			split(sym, p, "+"); print p[1], p[2]; break } } }' "$TMP/stacks" |
	sort | uniq -c > "$TMP/offsets"
"$LINES" "$ID" < "$TMP/offsets" | sort -rn | head -40
