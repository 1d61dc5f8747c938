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

# build_lock PATH: serialise builds of one output (hack/build-tools.sh may be building it in the
# background while a test tier asks for it); the caller re-checks its stamp after the lock. The
# lock is fd 9, held until the script exits, so a long-lived process started meanwhile must be
# started with `detached` (a daemon that inherits fd 9 holds the lock forever). A wait longer than
# BUILD_LOCK_TIMEOUT seconds fails and names the processes that hold the lock.
build_lock() {
  mkdir -p "$(dirname "$1")"; exec 9>"$1.lock"
  flock -n 9 && return 0
  local me=$BASHPID timeout="${BUILD_LOCK_TIMEOUT:-2400}"
  log "waiting for $1.lock, held by: $(lock_holders "$1.lock" "$me") (another build of the same output)"
  flock -w "$timeout" 9 \
    || die "gave up after ${timeout}s waiting for $1.lock, held by: $(lock_holders "$1.lock" "$me"); stop those processes and re-run"
}

# lock_holders FILE [PID]: "pid (command)" of every other process (not PID) with FILE open.
lock_holders() {
  local fd pid out="" seen=" $$ $BASHPID ${2:-} "
  for fd in /proc/[0-9]*/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = "$1" ] || continue
    pid=${fd#/proc/}; pid=${pid%%/*}
    [[ "$seen" == *" $pid "* ]] && continue
    seen+="$pid "
    out+="$pid ($(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)) "
  done
  echo "${out:-nobody}"
}

# detached CMD...: start a long-lived background process with none of this shell's descriptors
# past stderr (build locks above all); $! is its pid.
detached() {
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    exec "$@" </dev/null
  ) &
}
