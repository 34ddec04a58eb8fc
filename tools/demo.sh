#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# `make demo`: the demo agent (tools/demo-agent) under Locust load, profiled
# end to end by `agentprof record`, in one unattended command (as root).
#
#   1. installs missing Debian packages (tools/deps.sh) and builds (make)
#   2. starts PostgreSQL (if down), the fake LLM and the demo agent
#      (tools/demo-agent/run_stack.sh DEMO_OUT/state)
#   3. attaches `agentprof record -p AGENT_PID` and waits until it traces
#   4. runs Locust headless (tools/loadtest/locustfile.py)
#   5. stops agentprof (SIGINT), prints its per-route table, then Locust's
#      request counts next to agentprof's per route and a per-class summary
#      (tools/demo_report.py)
#   6. stops everything it started (also on Ctrl-C or an error): agentprof,
#      Locust, the agent, the fake LLM, and PostgreSQL if it was down.
#
# Outputs (DEMO_OUT, default demo-out/, git-ignored): profile.json,
# report.html (agentprof report: the page to open in a browser),
# requests.jsonl (one record per request), table.txt (agentprof's table),
# report.txt, summary.json, locust_*.csv, and logs (agentprof.log,
# locust.log, stack.log, state/{agent,llm}.log).
#
# Environment (all optional):
#   DEMO_DURATION=60      seconds of load
#   DEMO_USERS=30         concurrent Locust users
#   DEMO_SPAWN_RATE=5     users started per second
#   DEMO_LLM_SCALE=1      fake LLM latency factor (1: simple ~0.3 s,
#                         moderate ~1 s, complex 2-3 s)
#   DEMO_STOP_TIMEOUT=    seconds Locust lets each user finish its request
#                         at the end (default 5 + 5 x DEMO_LLM_SCALE; 0 =
#                         stop at once, leaving requests in flight)
#   DEMO_OUT=demo-out     output directory
#   AGENTPROF_WAIT_MIN/MAX, AGENTPROF_SLO... are read by the locustfile.
#
# Exit status: 0 when the demo ran and its checks held (the four routes seen
# with requests, agentprof's counts equal to Locust's within the requests in
# flight at the stop); 1 otherwise; 130 on Ctrl-C.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${DEMO_OUT:-$ROOT/demo-out}
[[ $OUT == /* ]] || OUT=$PWD/$OUT
cd "$ROOT"

PYTHON=/usr/bin/python3
AGENTPROF=$ROOT/build/agentprof
DURATION=${DEMO_DURATION:-60}
USERS=${DEMO_USERS:-30}
SPAWN_RATE=${DEMO_SPAWN_RATE:-5}
SCALE=${DEMO_LLM_SCALE:-1}
STOP_TIMEOUT=${DEMO_STOP_TIMEOUT:-}

log() { echo "demo: $*" >&2; }
die() { echo "demo: error: $*" >&2; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$|^[.][0-9]+$ ]]; }
if ! is_uint "$DURATION" || [ "$DURATION" -eq 0 ]; then
	die "DEMO_DURATION must be a positive integer (seconds), not '$DURATION'"
fi
if ! is_uint "$USERS" || [ "$USERS" -eq 0 ]; then
	die "DEMO_USERS must be a positive integer, not '$USERS'"
fi
if ! is_num "$SPAWN_RATE" || ! awk -v r="$SPAWN_RATE" 'BEGIN { exit !(r > 0) }'; then
	die "DEMO_SPAWN_RATE must be a positive number, not '$SPAWN_RATE'"
fi
is_num "$SCALE" || die "DEMO_LLM_SCALE must be a non-negative number, not '$SCALE'"
if [ -z "$STOP_TIMEOUT" ]; then
	STOP_TIMEOUT=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 5 + 5 * s + 0.999 }')
fi
is_uint "$STOP_TIMEOUT" || die "DEMO_STOP_TIMEOUT must be a non-negative integer, not '$STOP_TIMEOUT'"

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (installs packages, loads BPF programs, starts PostgreSQL): run: sudo make demo" >&2
	exit 1
fi

T0=$(date +%s)
elapsed() { echo "$(($(date +%s) - T0)) s"; }

# ------------------------------------------------------------------ cleanup

STATE=$OUT/state
AP_PID=
LOCUST_PID=
STACK_TOUCHED=0

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

wait_gone() { # wait_gone PID SECONDS: 0 once PID has exited (and is reaped)
	local pid=$1 i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then return 1; fi
	wait "$pid" 2>/dev/null || true
	return 0
}

# shellcheck disable=SC2317 # stop_pid and cleanup run from the traps
stop_pid() { # stop_pid NAME PID SIGNAL SECONDS
	local name=$1 pid=$2
	alive "$pid" || return 0
	kill -"$3" "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" "$4"; then
		log "$name (pid $pid) did not stop after SIG$3 within $4 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || log "$name (pid $pid) is still running"
	fi
}

# shellcheck disable=SC2317
cleanup() {
	local rc=$?
	trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
	trap - EXIT
	stop_pid locust "$LOCUST_PID" TERM 15
	stop_pid agentprof "$AP_PID" INT 30
	if [ "$STACK_TOUCHED" -eq 1 ]; then
		"$ROOT/tools/demo-agent/stop_stack.sh" "$STATE" 2>>"$OUT/stack.log" || {
			log "stop_stack.sh failed: see $OUT/stack.log"
			[ "$rc" -ne 0 ] || rc=1
		}
	fi
	# Under sudo, hand the default output directory back to the user.
	if [ -n "${SUDO_UID:-}" ] && [ -z "${DEMO_OUT:-}" ] && [ -d "$OUT" ]; then
		chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$OUT" 2>/dev/null || true
	fi
	if [ "$rc" -eq 130 ]; then
		log "interrupted after $(elapsed); everything the demo started is stopped"
	elif [ "$rc" -ne 0 ]; then
		log "failed after $(elapsed) (outputs and logs in $OUT)"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo >&2; log "Ctrl-C: stopping"; exit 130' INT
trap 'log "terminated: stopping"; exit 143' TERM

# ------------------------------------------------------------ deps and build

log "checking packages (tools/deps.sh)"
"$ROOT/tools/deps.sh" || die "tools/deps.sh failed"
log "building (make)"
make -s -C "$ROOT" all || die "build failed"
[ -x "$AGENTPROF" ] || die "$AGENTPROF missing after make"

# ------------------------------------------------------------------- outputs

mkdir -p "$OUT" "$STATE"
OUT=$(cd "$OUT" && pwd)
STATE=$OUT/state
# A stack left by an earlier demo that was killed hard: stop it first.
if compgen -G "$STATE/*.pid" >/dev/null || [ -f "$STATE/pg.started_by_us" ]; then
	log "stopping what an earlier demo left in $STATE"
	"$ROOT/tools/demo-agent/stop_stack.sh" "$STATE" 2>>"$OUT/stack.log" ||
		die "cannot stop the earlier demo stack (see $OUT/stack.log)"
fi
rm -f "$OUT"/{profile.json,report.html,requests.jsonl,table.txt,report.txt,summary.json} \
	"$OUT"/{agentprof.log,locust.log,stack.log,agent_cpu.txt,locustfile_demo.py} "$OUT"/locust_*.csv

# --------------------------------------------------------------------- stack

log "starting PostgreSQL (if down), fake LLM (scale $SCALE), demo agent"
STACK_TOUCHED=1
LLM_SCALE=$SCALE "$ROOT/tools/demo-agent/run_stack.sh" "$STATE" 2>>"$OUT/stack.log" || {
	tail -n 20 "$OUT/stack.log" >&2 || true
	die "the demo stack did not start (see $OUT/stack.log)"
}
AGENT_PID=$(cat "$STATE/agent.pid")
AGENT_URL=http://127.0.0.1:$(cat "$STATE/agent.port")
log "agent pid $AGENT_PID at $AGENT_URL, fake LLM at http://127.0.0.1:$(cat "$STATE/llm.port")"

# ----------------------------------------------------------------- agentprof

cpu_ticks() { # utime + stime of a process, in clock ticks
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

log "starting agentprof record -p $AGENT_PID"
"$AGENTPROF" record -p "$AGENT_PID" --requests "$OUT/requests.jsonl" -o "$OUT/profile.json" \
	>"$OUT/table.txt" 2>"$OUT/agentprof.log" </dev/null &
AP_PID=$!
for ((i = 0; i < 300; i++)); do
	grep -q '^agentprof: tracing' "$OUT/agentprof.log" 2>/dev/null && break
	alive "$AP_PID" || break
	sleep 0.1
done
if ! grep -q '^agentprof: tracing' "$OUT/agentprof.log" 2>/dev/null; then
	cat "$OUT/agentprof.log" >&2 || true
	die "agentprof did not start tracing (log: $OUT/agentprof.log)"
fi
sed -n '/^agentprof: tracing/p' "$OUT/agentprof.log" >&2
CPU_BEFORE=$(cpu_ticks "$AGENT_PID")

# -------------------------------------------------------------------- Locust

log "Locust: $USERS users (+$SPAWN_RATE/s) for $DURATION s, then up to $STOP_TIMEOUT s for the last requests (log: $OUT/locust.log)"
# Locust 2.12 rewrites locust_stats.csv once a second and not at exit, so the
# requests of its last second would be missing: load the locustfile through a
# wrapper that writes the final counts when Locust quits.
cat >"$OUT/locustfile_demo.py" <<EOF
# Generated by tools/demo.sh: tools/loadtest/locustfile.py, plus the final
# request stats written to the --csv file when Locust quits.
import csv
import sys

sys.path.insert(0, "$ROOT/tools/loadtest")
from locustfile import *  # noqa: E402,F401,F403 (the user classes)
from locust import events  # noqa: E402
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV  # noqa: E402

_env = None


@events.init.add_listener
def _demo_init(environment, **_kw):
    global _env
    _env = environment


@events.quit.add_listener
def _demo_final_stats(**_kw):
    prefix = getattr(_env.parsed_options, "csv_prefix", None) if _env else None
    if prefix:
        with open(prefix + "_stats.csv", "w", newline="", encoding="utf-8") as f:
            StatsCSV(_env, PERCENTILES_TO_REPORT).requests_csv(csv.writer(f))
EOF
"$PYTHON" -m locust -f "$OUT/locustfile_demo.py" --headless \
	-u "$USERS" -r "$SPAWN_RATE" -t "${DURATION}s" --stop-timeout "$STOP_TIMEOUT" \
	--host "$AGENT_URL" --csv "$OUT/locust" --only-summary \
	>"$OUT/locust.log" 2>&1 </dev/null &
LOCUST_PID=$!
locust_rc=0
wait "$LOCUST_PID" || locust_rc=$?
LOCUST_PID=
# 0: no failures; 1: some requests failed (reported below); else it broke.
if [ "$locust_rc" -gt 1 ]; then
	tail -n 20 "$OUT/locust.log" >&2 || true
	die "Locust exited with status $locust_rc (log: $OUT/locust.log)"
fi
[ -s "$OUT/locust_stats.csv" ] || die "Locust wrote no $OUT/locust_stats.csv (log: $OUT/locust.log)"

# Let the agent finish what Locust left in flight, then stop the recording.
sleep 1
CPU_AFTER=$(cpu_ticks "$AGENT_PID")
echo "$CPU_BEFORE $CPU_AFTER $(getconf CLK_TCK)" >"$OUT/agent_cpu.txt"
kill -INT "$AP_PID"
ap_rc=0
if wait_gone "$AP_PID" 30; then
	wait "$AP_PID" 2>/dev/null || ap_rc=$?
else
	kill -KILL "$AP_PID" 2>/dev/null || true
	ap_rc=timeout
fi
AP_PID=
[ "$ap_rc" = 0 ] || {
	cat "$OUT/agentprof.log" >&2 || true
	die "agentprof record exited with status $ap_rc"
}
grep -v '^agentprof: tracing' "$OUT/agentprof.log" >&2 || true

# ------------------------------------------------------------------- results

echo
echo "=== agentprof: per-route profile of the demo agent (pid $AGENT_PID) ==="
cat "$OUT/table.txt"
echo
report_rc=0
"$PYTHON" "$ROOT/tools/demo_report.py" "$OUT" --users "$USERS" --locust-rc "$locust_rc" |
	tee "$OUT/report.txt" || report_rc=$?
echo
"$AGENTPROF" report "$OUT/profile.json" -o "$OUT/report.html" >/dev/null ||
	die "agentprof report failed on $OUT/profile.json"
echo "HTML report: $OUT/report.html"
log "outputs in $OUT: profile.json report.html requests.jsonl table.txt report.txt locust_stats.csv"
log "done in $(elapsed)"
exit "$report_rc"
