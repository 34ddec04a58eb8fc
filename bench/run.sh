#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# agentprof overhead benchmark (`make bench`): untraced vs agentprof vs a
# naive bpftrace script, interleaved rounds, on a minimal C server, on nginx
# and on the demo agent. See bench/README.md.
#
#   bench/run.sh [--quick] [--rounds N] [--workloads tiny,nginx,demo] [--help]
#
# Needs root, wrk, bpftool, bpftrace (tools/deps.sh), a built build/agentprof
# (`make`), nginx for the nginx workload and PostgreSQL 15 for the demo
# workload. Builds
# build/bench/tiny_server itself. Results: bench/out/results-<sha>-<time>.json.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${BUILD:-$ROOT/build}
CC=${CC:-gcc}
PYTHON=${PYTHON:-/usr/bin/python3}

for a in "$@"; do
    case $a in -h|--help) exec "$PYTHON" "$HERE/bench.py" --help ;; esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "bench: needs root (BPF programs, bpf_stats)" >&2
    exit 2
fi
[ -x "$BUILD/agentprof" ] || { echo "bench: $BUILD/agentprof missing: run make" >&2; exit 2; }

make -s -C "$ROOT" BUILD="$BUILD" CC="$CC" "$BUILD/bench/tiny_server"

# The Python driver runs in the background so that this shell can forward
# Ctrl-C/SIGTERM to it at once; it stops everything it started, then exits.
py=
forward() {
    trap '' INT TERM HUP
    if [ -n "$py" ]; then
        kill -TERM "$py" 2>/dev/null || true
        wait "$py" 2>/dev/null || true
    fi
    exit 130
}
trap forward INT TERM HUP
"$PYTHON" "$HERE/bench.py" "$@" &
py=$!
rc=0
wait "$py" || rc=$?
py=
exit $rc
