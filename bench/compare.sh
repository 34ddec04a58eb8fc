#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Builds of agentprof side by side on the minimal server, for a change whose
# effect is a few percent: `make bench` measures one build, this compares
# several in the same run.
#
#   bench/compare.sh [-r ROUNDS] [-s SECONDS] [-b] BINARY...
#
# Each round runs the server untraced and traced by each BINARY (an
# agentprof executable, e.g. one built in a git worktree of the commit
# before; "BINARY --sample 4" passes options to `record`), in an order
# rotated from round to round, under wrk -t2 -c32 as in `make bench`. A
# BINARY written idle:PATH traces an idle process instead: the hooks alone,
# every call leaving at the filter. Prints each run, then per
# configuration the mean and range of req/s and the server's CPU per request
# (schedstat). BPF statistics stay off, as in `make bench`; -b turns them on
# and adds the run time of agentprof's programs (named ap_*) per request,
# which then costs every call two clock reads more. Needs root and wrk.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=4
SECS=6
PORT=18090
BPF_STATS=0

while getopts "r:s:bh" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	s) SECS=$OPTARG ;;
	b) BPF_STATS=1 ;;
	h) sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "compare: -h for help" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "compare: name at least one agentprof binary (-h for help)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "compare: needs root (BPF programs)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "compare: wrk not found: apt-get install wrk" >&2; exit 2; }
for b in "$@"; do
	b=${b#idle:}
	[ -x "${b%% *}" ] || { echo "compare: ${b%% *} is not an executable: build it first" >&2; exit 2; }
done
make -s -C "$ROOT" build/bench/tiny_server

TMP=$(mktemp -d)
SERVER= TRACER= IDLE=
STATS=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
	for p in $TRACER $IDLE $SERVER; do kill "$p" 2>/dev/null || true; done
	sysctl -qw kernel.bpf_stats_enabled="$STATS"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
sysctl -qw kernel.bpf_stats_enabled=$BPF_STATS

"$ROOT/build/bench/tiny_server" -p $PORT -t 1 >/dev/null &
SERVER=$!
sleep 0.3
kill -0 $SERVER 2>/dev/null || { echo "compare: the server did not start (port $PORT taken?)" >&2; exit 1; }

oncpu_ns() { cut -d' ' -f1 /proc/$SERVER/schedstat; }

# Run time of every loaded program named ap_*, in ns (0 without -b).
bpf_ns() {
	[ "$BPF_STATS" = 1 ] || { echo 0; return; }
	bpftool prog show -j | /usr/bin/python3 -c '
import json, sys
print(sum(p.get("run_time_ns", 0) for p in json.load(sys.stdin) if p.get("name", "").startswith("ap_")))'
}

# tracer_start CONFIG: nothing for "untraced", else agentprof on the server
# or, for idle:PATH, on a sleep.
tracer_start() {
	local bin=$1 target=$SERVER opts=()
	[ "$bin" = untraced ] && return 0
	if [ "${bin#idle:}" != "$bin" ]; then
		sleep 3600 &
		IDLE=$!
		target=$IDLE
		bin=${bin#idle:}
	fi
	read -r -a opts <<<"${bin#"${bin%% *}"}"
	bin=${bin%% *}
	"$bin" record -p $target -q -o "$TMP/profile.json" "${opts[@]}" >/dev/null 2>>"$TMP/tracer.err" &
	TRACER=$!
	sleep 1.5
	kill -0 $TRACER 2>/dev/null || { echo "compare: $bin record failed:" >&2; cat "$TMP/tracer.err" >&2; exit 1; }
}

tracer_stop() {
	[ -n "$TRACER" ] && { kill -INT $TRACER; wait $TRACER || true; }
	[ -n "$IDLE" ] && { kill $IDLE; wait $IDLE 2>/dev/null || true; }
	TRACER= IDLE=
}

CONFIGS=(untraced "$@")
N=${#CONFIGS[@]}
for r in $(seq 1 "$ROUNDS"); do
	for k in $(seq 0 $((N - 1))); do
		i=$(((k + r - 1) % N))
		tracer_start "${CONFIGS[$i]}"
		b0=$(bpf_ns)
		c0=$(oncpu_ns)
		out=$(wrk -t2 -c32 -d"${SECS}s" "http://127.0.0.1:$PORT/x/1")
		c1=$(oncpu_ns)
		b1=$(bpf_ns)
		tracer_stop
		reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
		rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
		printf '%d\t%d\t%s\t%.0f\t%.2f\t%.0f\n' "$r" "$i" "${CONFIGS[$i]}" "$rps" \
			"$(awk -v c=$((c1 - c0)) -v n="$reqs" 'BEGIN { print c / n / 1000 }')" \
			"$(awk -v b=$((b1 - b0)) -v n="$reqs" 'BEGIN { print b / n }')" |
			tee -a "$TMP/runs" |
			awk -F'\t' '{ printf "round %d  %-40s %8d req/s  %5.2f us/req  BPF %5d ns/req\n", $1, $3, $4, $5, $6 }'
	done
done
awk -F'\t' '
	{ name[$2] = $3; sum[$2] += $4; cpu[$2] += $5; bpf[$2] += $6; n[$2]++
	  if (!($2 in lo) || $4 < lo[$2]) lo[$2] = $4
	  if ($4 > hi[$2]) hi[$2] = $4 }
	END { print "== mean over rounds (range of req/s), server CPU per request, ratio to untraced, BPF per request"
	      for (i = 0; i in n; i++)
		printf "%-40s %8.0f (%.0f-%.0f) req/s  %5.2f us/req  %.3f  %5d ns/req\n", name[i],
		       sum[i] / n[i], lo[i], hi[i], cpu[i] / n[i], (sum[i] / n[i]) / (sum[0] / n[0]),
		       bpf[i] / n[i] }' "$TMP/runs"
