#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Stop what tools/demo-agent/run_stack.sh STATE_DIR started:
#
#   tools/demo-agent/stop_stack.sh STATE_DIR
#
# Stops the agent, then the fake LLM (SIGTERM, SIGKILL after STOP_TIMEOUT s),
# only if the recorded PID still runs the expected program. Stops PostgreSQL
# only if run_stack.sh started it (STATE_DIR/pg.started_by_us).
# Idempotent and non-interactive; a missing or empty STATE_DIR is fine.

set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then echo "usage: $0 STATE_DIR" >&2; exit 2; fi
STATE=$1
STOP_TIMEOUT=${STOP_TIMEOUT:-10}

log() { echo "stop_stack: $*" >&2; }

[ -d "$STATE" ] || { log "no state dir $STATE, nothing to stop"; exit 0; }

exec 9>"$STATE/.lock"
flock -w 60 9 || { log "another run_stack/stop_stack holds $STATE/.lock"; exit 1; }

alive() { # alive PID PATTERN: running (not a zombie) and cmdline matches
    local pid=$1 pat=$2 st
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$st" != Z ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$pat"
}

rc=0
stop_one() { # stop_one NAME PATTERN
    local name=$1 pat=$2 pid
    pid=$(cat "$STATE/$name.pid" 2>/dev/null || true)
    if alive "$pid" "$pat"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((STOP_TIMEOUT * 10))); do
            alive "$pid" "$pat" || break
            sleep 0.1
        done
        if alive "$pid" "$pat"; then
            log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        if alive "$pid" "$pat"; then
            log "$name (pid $pid) is still running"
            rc=1
            return
        fi
        log "stopped $name (pid $pid)"
    elif [ -n "$pid" ]; then
        log "$name (pid $pid) was not running"
    fi
    rm -f "$STATE/$name.pid" "$STATE/$name.port"
}

stop_one agent demo-agent/agent.py
stop_one llm fake-llm/fake_llm.py

if [ -f "$STATE/pg.started_by_us" ]; then
    read -r ver cluster < "$STATE/pg.started_by_us" || true
    if [ -n "${ver:-}" ] && [ -n "${cluster:-}" ]; then
        status=$(pg_lsclusters -h "$ver" "$cluster" 2>/dev/null | awk '{print $4}')
        case "$status" in
        online*)
            log "stopping PostgreSQL $ver/$cluster (started by run_stack)"
            if pg_ctlcluster "$ver" "$cluster" stop 9>&-; then
                rm -f "$STATE/pg.started_by_us"
            else
                log "pg_ctlcluster $ver $cluster stop failed"
                rc=1
            fi
            ;;
        *) rm -f "$STATE/pg.started_by_us" ;;
        esac
    else
        rm -f "$STATE/pg.started_by_us"
    fi
fi
exit $rc
