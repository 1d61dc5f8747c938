#!/usr/bin/env bash
# Provide the Python base image for the operator and worker images.
#   TRAINFORGE_OFFLINE=1 (default when no container registry answers): debootstrap a Debian
#     bookworm rootfs with python3.11 + pip and `docker import` it as $BASE_IMAGE_OFFLINE.
#   TRAINFORGE_OFFLINE=0: pull the stock $BASE_IMAGE_ONLINE instead.
# Prints the image reference to use as BASE_IMAGE on stdout (everything else goes to stderr).
source "$(dirname "$0")/lib.sh"
BASE_IMAGE_OFFLINE="${BASE_IMAGE_OFFLINE:-trainforge/python-base:3.11-bookworm}"
BASE_IMAGE_ONLINE="${BASE_IMAGE_ONLINE:-python:3.11-slim-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS_TAR="$CACHE_DIR/images/python-base-bookworm.tar"
PACKAGES=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,tzdata,procps

offline_mode() {
  case "${TRAINFORGE_OFFLINE:-auto}" in
    1|true|yes) return 0 ;;
    0|false|no) return 1 ;;
  esac
  # auto: a registry that answers (even 401) means pulls can work.
  ! curl -s -o /dev/null -m 5 https://registry-1.docker.io/v2/
}

build_rootfs_tar() {
  command -v debootstrap >/dev/null || {
    log "apt-get install debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  }
  mkdir -p "$CACHE_DIR/build"
  BUILD_ROOT=$(mktemp -d "$CACHE_DIR/build/python-base.XXXXXX")
  trap 'rm -rf "$BUILD_ROOT"' EXIT
  local root="$BUILD_ROOT"
  log "debootstrap bookworm minbase + python3.11 into $root (cold: ~2-4 min)"
  local start; start=$(date +%s)
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >&2 \
    || die "debootstrap failed; check that $MIRROR is reachable (set DEBIAN_MIRROR to override)"
  # Images install packages with pip like python:*-slim does; PEP 668's marker would refuse that.
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Trust the same extra CAs as the host (TLS-intercepting egress proxies), so pip works in builds.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
  fi
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/var/log/*.log
  mkdir -p "$(dirname "$ROOTFS_TAR")"
  tar --numeric-owner -C "$root" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  log "rootfs tarball $(du -h "$ROOTFS_TAR" | cut -f1) in $(( $(date +%s) - start ))s"
}

"$HACK_DIR/docker.sh"
if ! offline_mode; then
  log "registry reachable (TRAINFORGE_OFFLINE=0): pulling $BASE_IMAGE_ONLINE"
  docker image inspect "$BASE_IMAGE_ONLINE" >/dev/null 2>&1 || docker pull -q "$BASE_IMAGE_ONLINE" >&2
  echo "$BASE_IMAGE_ONLINE"; exit 0
fi
if docker image inspect "$BASE_IMAGE_OFFLINE" >/dev/null 2>&1; then
  log "$BASE_IMAGE_OFFLINE present"; echo "$BASE_IMAGE_OFFLINE"; exit 0
fi
[ -f "$ROOTFS_TAR" ] || build_rootfs_tar
log "docker import $ROOTFS_TAR as $BASE_IMAGE_OFFLINE"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
  --change 'CMD ["python3"]' "$ROOTFS_TAR" "$BASE_IMAGE_OFFLINE" >/dev/null
docker run --rm "$BASE_IMAGE_OFFLINE" python --version >&2
echo "$BASE_IMAGE_OFFLINE"
