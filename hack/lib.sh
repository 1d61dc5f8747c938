#!/usr/bin/env bash
# Shared helpers for the offline build scripts: a versioned cache, progress lines, pinned versions.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HACK_DIR/.." && pwd)"
# Built tools live outside the repo, keyed by version, and are never committed.
CACHE_DIR="${TRAINFORGE_CACHE:-$HOME/.cache/trainforge}"
mkdir -p "$CACHE_DIR"

# Pinned versions (see shared notes: offline-clusters.md).
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
HELM_VERSION="${HELM_VERSION:-v3.19.0}"

log() { printf '\033[1;34m[%s %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$(basename "$0" .sh)" "$*" >&2; }
die() { printf '\033[1;31m[%s] error:\033[0m %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# stamp_ok DIR: true when DIR was completely built before (a .done stamp is written last).
stamp_ok() { [ -f "$1/.done" ]; }
stamp_write() { date -u +%FT%TZ > "$1/.done"; }

# Go builds use all cores but stay polite to interactive work.
# GOGC=400: the compiler spends less time collecting garbage (memory is plentiful, cores are not).
go_env() {
  export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOGC="${GOGC:-400}"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
}

# build_lock DIR: serialise builds of one output (hack/build-tools.sh may be building it in the
# background while a test tier asks for it); the caller re-checks its stamp after the lock.
build_lock() { mkdir -p "$(dirname "$1")"; exec 9>"$1.lock"; flock 9; }
