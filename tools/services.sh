#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Starts or stops the services the tests and the demo use: PostgreSQL 15
# (Debian's cluster 15/main). `start` records whether it started the
# cluster, so `stop` stops only what it started.
set -euo pipefail

STATE=${AGENTPROF_STATE:-/tmp/agentprof-services}
mkdir -p "$STATE"

pg_running() {
	pg_lsclusters -h 2>/dev/null | awk '$1 == "15" && $2 == "main" { print $4 }' | grep -q online
}

start() {
	if ! pg_lsclusters -h 2>/dev/null | awk '{ print $1 "/" $2 }' | grep -qx 15/main; then
		pg_createcluster 15 main >/dev/null
	fi
	if pg_running; then
		return 0
	fi
	pg_ctlcluster 15 main start
	touch "$STATE/pg.started"
	for _ in $(seq 50); do
		su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "services: PostgreSQL 15/main did not accept connections: see /var/log/postgresql/" >&2
	return 1
}

stop() {
	if [ -f "$STATE/pg.started" ]; then
		pg_ctlcluster 15 main stop || true
		rm -f "$STATE/pg.started"
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
