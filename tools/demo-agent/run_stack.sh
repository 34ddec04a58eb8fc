#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Start the demo stack: PostgreSQL (if down), fake LLM, demo agent.
#
#   tools/demo-agent/run_stack.sh STATE_DIR
#
# Writes into STATE_DIR: llm.pid llm.port agent.pid agent.port (and llm.log,
# agent.log; pg.started_by_us when this script had to start PostgreSQL, so
# that stop_stack.sh only stops what was started here).
# Idempotent: parts already running from STATE_DIR are left alone.
# Non-interactive: never prompts; exits non-zero with a message on failure.
#
# Environment (all optional):
#   LLM_PORT=0 AGENT_PORT=0      ports (0 = pick a free one)
#   LLM_SCALE=1 LLM_JITTER=0.2 LLM_SEED=   fake LLM latency knobs
#   LLM_EXTRA_ARGS= AGENT_EXTRA_ARGS=      extra CLI flags (word-split)
#   PG_VERSION=15 PG_CLUSTER=main          Debian cluster to use
#   PG_DB=agentdemo PG_USER=agentdemo PG_PASSWORD=agentdemo
#   AGENT_DSN=                   use this DSN as is (skip role/db creation)
#   PYTHON=/usr/bin/python3  READY_TIMEOUT=30 (seconds)

set -euo pipefail

usage() { echo "usage: $0 STATE_DIR" >&2; exit 2; }
if [ $# -ne 1 ] || [ -z "$1" ]; then usage; fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$(dirname "$HERE")
STATE=$1
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

PYTHON=${PYTHON:-/usr/bin/python3}
LLM_PORT=${LLM_PORT:-0}
AGENT_PORT=${AGENT_PORT:-0}
LLM_SCALE=${LLM_SCALE:-1}
LLM_JITTER=${LLM_JITTER:-0.2}
LLM_SEED=${LLM_SEED:-}
PG_VERSION=${PG_VERSION:-15}
PG_CLUSTER=${PG_CLUSTER:-main}
PG_DB=${PG_DB:-agentdemo}
PG_USER=${PG_USER:-agentdemo}
PG_PASSWORD=${PG_PASSWORD:-agentdemo}
READY_TIMEOUT=${READY_TIMEOUT:-30}
LLM_PAT=fake-llm/fake_llm.py
AGENT_PAT=demo-agent/agent.py

die() { echo "run_stack: $*" >&2; exit 1; }

# On failure, undo what this invocation started (processes and PostgreSQL),
# so a failed run leaves nothing behind; parts that were already running stay.
started_here=()
pg_started_here=0
cleanup_on_failure() {
    local rc=$?
    [ $rc -ne 0 ] || return 0
    local name
    for name in "${started_here[@]}"; do
        stop_one "$name" "$([ "$name" = llm ] && echo "$LLM_PAT" || echo "$AGENT_PAT")"
    done
    if [ $pg_started_here -eq 1 ]; then
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop 9>&- && rm -f "$STATE/pg.started_by_us"
    fi
    exit $rc
}
trap cleanup_on_failure EXIT
log() { echo "run_stack: $*" >&2; }

# One run_stack/stop_stack at a time per state dir. fd 9 is closed for the
# children so they do not keep the lock.
exec 9>"$STATE/.lock"
flock -w 60 9 || die "another run_stack/stop_stack holds $STATE/.lock"

# ---------------------------------------------------------------- PostgreSQL

pg_field() { # pg_lsclusters field: 3=port 4=status
    pg_lsclusters -h "$PG_VERSION" "$PG_CLUSTER" 2>/dev/null | awk -v f="$1" '{print $f}'
}

command -v pg_lsclusters >/dev/null || die "pg_lsclusters not found (install postgresql)"
[ -n "$(pg_field 3)" ] || die "PostgreSQL cluster $PG_VERSION/$PG_CLUSTER does not exist"

case "$(pg_field 4)" in
online*) ;;
*)
    [ "$(id -u)" -eq 0 ] || die "cluster $PG_VERSION/$PG_CLUSTER is down and starting it needs root"
    log "starting PostgreSQL $PG_VERSION/$PG_CLUSTER"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start 9>&- || die "pg_ctlcluster start failed"
    echo "$PG_VERSION $PG_CLUSTER" > "$STATE/pg.started_by_us"
    pg_started_here=1
    ;;
esac
PG_PORT=$(pg_field 3)

for _ in $(seq 1 $((READY_TIMEOUT * 5))); do
    pg_isready -q -h /var/run/postgresql -p "$PG_PORT" && break
    sleep 0.2
done
pg_isready -q -h /var/run/postgresql -p "$PG_PORT" || die "PostgreSQL not ready on port $PG_PORT"

pg_admin() { # run psql as the postgres superuser
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@" 9>&-)
    else
        psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@" 9>&-
    fi
}

if [ -z "${AGENT_DSN:-}" ]; then
    [[ $PG_USER =~ ^[a-z_][a-z0-9_]*$ && $PG_DB =~ ^[a-z_][a-z0-9_]*$ ]] ||
        die "PG_USER and PG_DB must be plain lower-case identifiers"
    [[ $PG_PASSWORD != *"'"* ]] || die "PG_PASSWORD must not contain a single quote"
    if [ "$(pg_admin -tA -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
        log "creating role $PG_USER"
        pg_admin -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" ||
            die "cannot create role $PG_USER"
    fi
    if [ "$(pg_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
        log "creating database $PG_DB"
        pg_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER" || die "cannot create database $PG_DB"
    fi
    AGENT_DSN="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
fi

# ---------------------------------------------------------------- processes

alive() { # alive PID PATTERN: running (not a zombie) and cmdline matches
    local pid=$1 pat=$2 st
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$st" != Z ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$pat"
}

running() { # running NAME PATTERN
    [ -f "$STATE/$1.pid" ] && [ -f "$STATE/$1.port" ] && alive "$(cat "$STATE/$1.pid")" "$2"
}

stop_one() { # stop_one NAME PATTERN (used when a restart is needed)
    local pid
    pid=$(cat "$STATE/$1.pid" 2>/dev/null || true)
    if alive "$pid" "$2"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do alive "$pid" "$2" || break; sleep 0.2; done
        if alive "$pid" "$2"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$STATE/$1.pid" "$STATE/$1.port"
}

start_one() { # start_one NAME PATTERN CMD...  -> writes NAME.pid NAME.port
    local name=$1 pat=$2 pid port=
    shift 2
    rm -f "$STATE/$name.pid" "$STATE/$name.port"
    # setsid: own session, so a terminal's Ctrl-C does not reach it; setsid
    # execs directly (no fork) because a background job is no group leader,
    # hence $! is the Python process itself.
    setsid "$@" > "$STATE/$name.log" 2>&1 < /dev/null 9>&- &
    pid=$!
    started_here+=("$name")
    echo "$pid" > "$STATE/$name.pid"
    for _ in $(seq 1 $((READY_TIMEOUT * 10))); do
        port=$(awk '/^listening [0-9]+$/ {print $2; exit}' "$STATE/$name.log")
        [ -n "$port" ] && break
        alive "$pid" "$pat" || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        tail -n 20 "$STATE/$name.log" >&2 || true
        die "$name did not start (log: $STATE/$name.log)"
    fi
    echo "$port" > "$STATE/$name.port"
    log "$name pid $pid port $port"
}

llm_started=0

if running llm "$LLM_PAT"; then
    log "llm already running (pid $(cat "$STATE/llm.pid"), port $(cat "$STATE/llm.port"))"
else
    stop_one llm "$LLM_PAT"
    llm_args=(--port "$LLM_PORT" --scale "$LLM_SCALE" --jitter "$LLM_JITTER")
    [ -n "$LLM_SEED" ] && llm_args+=(--seed "$LLM_SEED")
    # shellcheck disable=SC2206
    llm_args+=(${LLM_EXTRA_ARGS:-})
    start_one llm "$LLM_PAT" "$PYTHON" "$TOOLS/fake-llm/fake_llm.py" "${llm_args[@]}"
    llm_started=1
fi
LLM_URL="http://127.0.0.1:$(cat "$STATE/llm.port")"

if running agent "$AGENT_PAT" && [ $llm_started -eq 0 ]; then
    log "agent already running (pid $(cat "$STATE/agent.pid"), port $(cat "$STATE/agent.port"))"
else
    stop_one agent "$AGENT_PAT" # stale, or pointing at an LLM that is gone
    # The DSN (it may hold a password) goes through the environment, not argv.
    # shellcheck disable=SC2206
    agent_args=(--port "$AGENT_PORT" --llm-url "$LLM_URL" ${AGENT_EXTRA_ARGS:-})
    AGENT_DSN=$AGENT_DSN start_one agent "$AGENT_PAT" "$PYTHON" "$HERE/agent.py" "${agent_args[@]}"
fi

AGENT_URL="http://127.0.0.1:$(cat "$STATE/agent.port")"
for _ in $(seq 1 $((READY_TIMEOUT * 5))); do
    curl -fsS -m 2 -o /dev/null "$AGENT_URL/healthz" 2>/dev/null && break
    sleep 0.2
done
curl -fsS -m 2 -o /dev/null "$AGENT_URL/healthz" || die "agent /healthz does not answer at $AGENT_URL"
curl -fsS -m 2 -o /dev/null "$LLM_URL/healthz" || die "fake LLM /healthz does not answer at $LLM_URL"
log "ready: agent $AGENT_URL (pid $(cat "$STATE/agent.pid")), llm $LLM_URL (pid $(cat "$STATE/llm.pid"))"
