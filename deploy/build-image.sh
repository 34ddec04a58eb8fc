#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Builds the agentprof image without a container registry: a Debian 12 root
# filesystem from mmdebstrap (the runtime libraries of deploy/Dockerfile's
# second stage, from the Debian archive) with build/agentprof copied in,
# imported into podman as agentprof:0.1.0. Where a registry is reachable,
# `podman build -f deploy/Dockerfile .` builds the same from source.
#
#   deploy/build-image.sh [TAG]      (root; after `make`; needs mmdebstrap, podman)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-agentprof:0.1.0}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
[ -x "$ROOT/build/agentprof" ] || { echo "build-image: run make first" >&2; exit 2; }
for c in mmdebstrap podman; do
	command -v "$c" >/dev/null || { echo "build-image: $c missing: apt-get install $c" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mmdebstrap --variant=essential --quiet \
	--include=libbpf1,libjson-c5,libmicrohttpd12,libelf1,zlib1g \
	--customize-hook="copy-in $ROOT/build/agentprof /usr/local/sbin" \
	--customize-hook='rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/var/cache/apt' \
	bookworm "$tmp/rootfs.tar" "$MIRROR"
podman import \
	--change 'ENTRYPOINT ["/usr/local/sbin/agentprof", "export"]' \
	--change 'CMD ["--listen", "0.0.0.0:9464", "--k8s-logs", "/host/var/log"]' \
	--change 'EXPOSE 9464' \
	"$tmp/rootfs.tar" "$TAG" >/dev/null
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep "${TAG%%:*}" || true
