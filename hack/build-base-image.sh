#!/usr/bin/env bash
# Provide the Python base image for the operator and worker images.
#   TRAINFORGE_OFFLINE=1 (default when no container registry answers): debootstrap a Debian
#     $DEBIAN_SUITE rootfs with python3 + pip and build $BASE_IMAGE_OFFLINE on it
#     (hack/images/python-base.Dockerfile).
#   TRAINFORGE_OFFLINE=0: pull the stock $BASE_IMAGE_ONLINE instead.
# Prints the image reference to use as BASE_IMAGE on stdout (everything else goes to stderr).
source "$(dirname "$0")/lib.sh"
BASE_IMAGE_OFFLINE="${BASE_IMAGE_OFFLINE:-trainforge/python-base:$PYTHON_VERSION-$DEBIAN_SUITE}"
BASE_IMAGE_ONLINE="${BASE_IMAGE_ONLINE:-python:$PYTHON_VERSION-slim-$DEBIAN_SUITE}"
ROOTFS_TAR="$CACHE_DIR/images/python-base-$DEBIAN_SUITE.tar"
PACKAGES=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,tzdata,procps

offline_mode() {
  case "${TRAINFORGE_OFFLINE:-auto}" in
    1|true|yes) return 0 ;;
    0|false|no) return 1 ;;
  esac
  # auto: a registry that answers (even 401) means pulls can work.
  ! curl -s -o /dev/null -m 5 https://registry-1.docker.io/v2/
}

# python_rootfs ROOT: let images pip-install and trust this host's CAs.
python_rootfs() {
  # Images install packages with pip like python:*-slim does; PEP 668's marker would refuse that.
  rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Trust the same extra CAs as the host (TLS-intercepting egress proxies), so pip works in builds.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"
    chroot "$1" update-ca-certificates >/dev/null 2>&1 || true
  fi
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
mkdir -p "$CACHE_DIR/build"
WORK=$(mktemp -d "$CACHE_DIR/build/python-base.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
debootstrap_tar "$ROOTFS_TAR" "$PACKAGES" "$WORK" python_rootfs
log "building $BASE_IMAGE_OFFLINE from $ROOTFS_TAR"
image_from_rootfs "$ROOTFS_TAR" python-base.Dockerfile "$BASE_IMAGE_OFFLINE"
docker run --rm "$BASE_IMAGE_OFFLINE" python --version >&2
echo "$BASE_IMAGE_OFFLINE"
