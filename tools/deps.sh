#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Installs the Debian 12 packages agentprof needs to build, test, demo and
# benchmark. Idempotent: installs only what is missing, never prompts.
set -euo pipefail

PKGS=(
	# build
	make gcc clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool pkg-config libjson-c-dev
	libmicrohttpd-dev
	# plan: profiles from an exporter over HTTP (libcurl), YAML output (libyaml)
	libcurl4-openssl-dev libyaml-dev
	# clang's libFuzzer and sanitizer runtimes (make fuzz, make test SANITIZE=1)
	libclang-rt-14-dev
	# tests and demo: real servers, clients and load generators
	postgresql python3 python3-aiohttp python3-fastapi python3-uvicorn python3-asyncpg
	python3-psycopg2 python3-locust libpq-dev curl procps
	# tests: a real browser opens agentprof report's HTML (test_report, test_diff);
	# tmux gives `record --live` a terminal (test_live)
	chromium tmux
	# agentprof export's tests: a real Prometheus scraping it, promtool, setpriv, deploy/ YAML
	prometheus util-linux python3-yaml
	# test_pyrt_offsets: CPython 3.11's headers, internal ones included
	python3.11-dev
	# benchmarks
	wrk bpftrace
	# the kernel matrix (tests/vm): boots Debian's kernels with a busybox initramfs
	qemu-system-x86 busybox-static
)
# --bench (make bench): nginx too, for bench/'s nginx workload alone. The bench
# runs an instance of its own; installing the package also starts the
# system's nginx service where systemd runs, which the tests have no use for.
if [ "${1:-}" = "--bench" ]; then
	PKGS+=(nginx)
fi

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm for the node + pg test server (tests/pg/nodepg.py installs its
# npm packages from the lockfile). Any node with its npm: a NodeSource nodejs
# bundles npm (and conflicts with Debian's npm package), so look for the
# commands rather than the packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}: run as root (sudo make deps)" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
