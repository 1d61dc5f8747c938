#!/usr/bin/env bash
# shellcheck disable=SC2034  # variables here are for the scripts that source this file
# Shared helpers for the offline build scripts: pinned versions, a versioned cache, progress lines,
# build locks, and the Go-build, debootstrap and image skeletons every build script shares.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HACK_DIR/.." && pwd)"
# Built tools live outside the repo, keyed by version, and are never committed.
CACHE_DIR="${TRAINFORGE_CACHE:-$HOME/.cache/trainforge}"
mkdir -p "$CACHE_DIR"

# load_versions: every pin in hack/versions.env becomes a shell variable; one already set in the
# environment wins, so a single build can try another version.
load_versions() {
  local key value
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ ]] || continue   # comments and blank lines
    [ -n "${!key:-}" ] || printf -v "$key" '%s' "$value"
  done < "$HACK_DIR/versions.env"
}
load_versions
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Images made here from the pins above: the kind node, the minimal base of the cluster's add-ons,
# and this repository's two (hack/build-images.sh).
NODE_IMAGE="${NODE_IMAGE:-offline.local/kind-node:$K8S_VERSION}"
MINI_BASE_IMAGE="trainforge/kind-mini-base:$DEBIAN_SUITE"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-trainforge/operator:$TRAINFORGE_VERSION}"
WORKER_IMAGE="${WORKER_IMAGE:-trainforge/worker:$TRAINFORGE_VERSION}"
# Python and torch without trainforge, FROM the worker image (hack/images/torch-plain.Dockerfile):
# the image a user brings, for the standalone launcher's e2e test.
PLAIN_IMAGE="${PLAIN_IMAGE:-trainforge/torch-plain:$TRAINFORGE_VERSION}"

log() { printf '\033[1;34m[%s %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$(basename "$0" .sh)" "$*" >&2; }
die() { printf '\033[1;31m[%s] error:\033[0m %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# stamp_ok DIR: true when DIR was completely built before (a .done stamp is written last).
stamp_ok() { [ -f "$1/.done" ]; }
stamp_write() { date -u +%FT%TZ > "$1/.done"; }

# Go builds use all cores but stay polite to interactive work.
# GOGC=400: the compiler spends less time collecting garbage (memory is plentiful, cores are not).
go_env() {
  command -v go >/dev/null || die "go is not on PATH: install Go >= $GO_MIN_VERSION to build the tools"
  export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOGC="${GOGC:-400}"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
}

# tool_dir NAME VERSION: where a Go tool is built and cached. The path is the cache key (the Python
# tiers compute it too, tests/integration/tf_controlplane.py): change it and every tool rebuilds.
tool_dir() { echo "$CACHE_DIR/$1-$2"; }

# go_tool [--build FN] NAME MODULE@VERSION [go install flags and more packages...]
#   Build a Go tool once per version into $(tool_dir NAME VERSION)/bin under that directory's build
#   lock, then say where it is, also when it was cached: "NAME VERSION: PATH" on stderr and PATH
#   alone on stdout (callers do `HELM=$(hack/build-helm.sh)`). PATH is bin/NAME when there is one,
#   else the bin directory. The build is `go install [args...] MODULE@VERSION` into that bin;
#   with --build, `FN BIN_DIR MODULE VERSION [args...]` builds instead (what `go install` refuses).
go_tool() {
  local build=go_tool_install
  if [ "$1" = --build ]; then build=$2; shift 2; fi
  local name=$1 module=${2%@*} version=${2##*@} out; shift 2
  out=$(tool_dir "$name" "$version")
  build_lock "$out"
  if ! stamp_ok "$out"; then
    go_tool_build "$name" "$out" "$build" "$module" "$version" "$@"
  fi
  go_tool_report "$name" "$version" "$out/bin"
}

# go_tool_build NAME OUT BUILD_FN MODULE VERSION [args...]: one timed build, stamped when done.
go_tool_build() {
  local name=$1 out=$2 build=$3 module=$4 version=$5 start; shift 5
  go_env
  mkdir -p "$out/bin"
  log "compiling $name $version (first build of this version: minutes on 2 cores; nice -n 10)"
  start=$(date +%s)
  "$build" "$out/bin" "$module" "$version" "$@" >&2   # stdout carries only the path
  stamp_write "$out"
  log "compiled $name $version in $(( $(date +%s) - start ))s"
}

# go_tool_install BIN_DIR MODULE VERSION [go install flags and more packages...]
go_tool_install() {
  local bin=$1 module=$2 version=$3; shift 3
  GOBIN="$bin" nice -n 10 go install "$@" "$module@$version" \
    || die "go install $module@$version failed: check the Go module proxy (go env GOPROXY)"
  smoke_test "$bin/${module##*/}" --version
}

# go_tool_report NAME VERSION BIN_DIR
go_tool_report() {
  local path=$3 listing=""
  if [ -x "$3/$1" ]; then path="$3/$1"; else listing=" ($(cd "$3" && echo *))"; fi
  log "$1 $2: $path$listing"
  echo "$path"
}

# smoke_test BINARY [ARGS...]: the built binary runs (default: --version); logs its first line.
smoke_test() {
  local bin=$1 first; shift
  first=$("$bin" "${@:---version}" 2>&1 | sed -n 1p) \
    || die "built $bin does not run: remove $(dirname "$(dirname "$bin")") and build again"
  log "  $(basename "$bin"): $first"
}

# go_mod_dir MODULE@VERSION: fetch a module into the module cache (once) and print its directory.
go_mod_dir() { go mod download -json "$1" | json_field Dir; }

# json_field KEY[.KEY...]: one field of the JSON object on stdin (empty when absent).
json_field() {
  python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k, {}) if isinstance(v, dict) else {}
print(v if isinstance(v, str) else "")' "$1"
}

# debootstrap_tar TARBALL PACKAGES WORKDIR [CUSTOMIZE_FN]: a Debian $DEBIAN_SUITE minbase rootfs
# with PACKAGES, packed (numeric owners) into TARBALL once and reused after. It is assembled in
# WORKDIR, which the caller removes; CUSTOMIZE_FN ROOT runs before the clean-up and packing.
debootstrap_tar() {
  local tarball=$1 packages=$2 customize=${4:-} root start
  root="$3/rootfs-$(basename "$tarball" .tar)"
  [ -f "$tarball" ] && return 0
  command -v debootstrap >/dev/null || {
    log "apt-get install debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  }
  start=$(date +%s)
  log "debootstrap $DEBIAN_SUITE minbase for $(basename "$tarball") (cold: ~2-4 min; log: $root.log)"
  debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" \
    >"$root.log" 2>&1 || die "debootstrap failed, see $root.log (set DEBIAN_MIRROR to another mirror)"
  [ -z "$customize" ] || "$customize" "$root"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/var/log/*.log
  mkdir -p "$(dirname "$tarball")"
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  log "$(basename "$tarball"): $(du -h "$tarball" | cut -f1) in $(( $(date +%s) - start ))s"
}

# docker_image REF DOCKERFILE CONTEXT [docker build args...]: build REF from hack/images/DOCKERFILE.
docker_image() {
  local ref=$1 dockerfile=$2 ctx=$3; shift 3
  docker build -q -t "$ref" -f "$HACK_DIR/images/$dockerfile" "$@" "$ctx" >/dev/null
}

# file_image REF DOCKERFILE [--build-arg NAME=VALUE...] FILE...: build REF from hack/images/
# DOCKERFILE with a build context of just these files (binaries, configs), copied by name.
file_image() (
  local ref=$1 dockerfile=$2 ctx args=(); shift 2
  while [ "${1:-}" = --build-arg ]; do args+=("$1" "$2"); shift 2; done
  mkdir -p "$CACHE_DIR/build"
  ctx=$(mktemp -d "$CACHE_DIR/build/image.XXXXXX")
  trap 'rm -rf "$ctx"' EXIT
  cp -r "$@" "$ctx/"
  docker_image "$ref" "$dockerfile" "$ctx" "${args[@]}"
)

# image_from_rootfs TARBALL|- DOCKERFILE REF: `docker import` a root filesystem (- reads the tar
# from stdin), then build REF on it with DOCKERFILE (FROM its ARG ROOTFS) for ENV, CMD and such.
image_from_rootfs() {
  local rootfs="$3-rootfs"
  docker import "$1" "$rootfs" >/dev/null
  docker_image "$3" "$2" "$HACK_DIR/images" --build-arg ROOTFS="$rootfs"
  docker rmi "$rootfs" >/dev/null 2>&1 || true
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
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    exec "$@" </dev/null
  ) &
}
