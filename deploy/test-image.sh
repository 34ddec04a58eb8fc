#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# The image, run as the DaemonSet runs it: deploy/build-image.sh builds it
# (mmdebstrap + podman import: no registry needed), then podman runs it with
# hostPID, every capability dropped but CAP_BPF, CAP_PERFMON and
# CAP_SYS_PTRACE, a read-only root and read-only BTF, tracefs and cgroup
# mounts; it must count the requests of the C test server, and with each
# capability fewer exit naming it. Ends with "N passed, N failed".
#
#   deploy/test-image.sh [--no-build]   (root; after `make`; mmdebstrap, podman, runc)
#
# runc rather than podman's default crun: crun refuses hosts whose cgroups
# are in hybrid (v1 + v2) mode, as the development machines' are.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=localhost/agentprof:0.1.0
PORT=19130
SRV_PORT=19131
NAME=agentprof-image-test-$$
CAPS=(CAP_BPF CAP_PERFMON CAP_SYS_PTRACE)
pass=0
fail=0

check() {
	if [ "$2" = 0 ]; then
		echo "ok - $1"
		pass=$((pass + 1))
	else
		echo "FAIL - $1: $3"
		fail=$((fail + 1))
	fi
}

run() { # caps...: runs the image detached against the server
	local add
	add=$(IFS=,; echo "$*")
	podman --runtime runc run -d --name "$NAME" --pid=host --network=host \
		--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
		--cap-drop=ALL ${add:+--cap-add="$add"} --security-opt seccomp=unconfined --read-only \
		-v /sys/kernel/btf:/sys/kernel/btf:ro -v /sys/kernel/tracing:/sys/kernel/tracing:ro \
		-v /sys/fs/cgroup:/sys/fs/cgroup:ro \
		"$TAG" --listen "127.0.0.1:$PORT" -p "$srv" >/dev/null
}

cleanup() {
	podman --runtime runc rm -f "$NAME" >/dev/null 2>&1
	[ -n "${srv:-}" ] && kill "$srv" 2>/dev/null
}
trap cleanup EXIT

if [ "${1:-}" != "--no-build" ]; then
	"$ROOT/deploy/build-image.sh" "$TAG" >/dev/null
	check "the image builds from Debian packages (mmdebstrap, podman import)" $? ""
fi
"$ROOT/build/tests/cpu_server" --port "$SRV_PORT" >/dev/null &
srv=$!
sleep 0.3

run "${CAPS[@]}"
for _ in $(seq 1 100); do
	curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break
	sleep 0.1
done
for i in 1 2 3 4; do curl -s "127.0.0.1:$SRV_PORT/cpu/$i?ms=2" >/dev/null; done
sleep 1
got=$(curl -s "127.0.0.1:$PORT/metrics" |
	awk '/^http_server_request_duration_seconds_count/ {n += $2} END {print n + 0}')
[ "$got" = 4 ]
check "runs under exactly ${CAPS[*]} with read-only mounts, counts 4 of 4 requests" $? \
	"counted $got; logs: $(podman logs "$NAME" 2>&1 | tail -3)"
podman --runtime runc rm -f "$NAME" >/dev/null 2>&1

for drop in "${CAPS[@]}"; do
	fewer=()
	for c in "${CAPS[@]}"; do [ "$c" != "$drop" ] && fewer+=("$c"); done
	run "${fewer[@]}"
	podman --runtime runc wait "$NAME" >/dev/null 2>&1
	logs=$(podman logs "$NAME" 2>&1)
	rc=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
	[ "$rc" != 0 ] && grep -q "$drop" <<<"$logs"
	check "without $drop: exits $rc naming it" $? "$logs"
	podman --runtime runc rm -f "$NAME" >/dev/null 2>&1
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
