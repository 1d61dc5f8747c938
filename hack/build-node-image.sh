#!/usr/bin/env bash
# Build the kind node image offline (`kind build node-image` needs a registry):
#   Debian bookworm rootfs (debootstrap: systemd, containerd 1.6.20, runc 1.1.5, CNI plugins)
#   + kind's base files from the pinned kind module + the project-built Kubernetes binaries
#   + component images (apiserver, controller-manager, scheduler, proxy, etcd, coredns, pause)
#     preloaded into containerd's k8s.io namespace by a throw-away host containerd
#   -> docker import + ENV/STOPSIGNAL/ENTRYPOINT  => $NODE_IMAGE
source "$(dirname "$0")/lib.sh"
NODE_IMAGE="${NODE_IMAGE:-offline.local/kind-node:$K8S_VERSION}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
K8S_BIN="$CACHE_DIR/k8s-$K8S_VERSION/bin"
ETCD_BIN="$CACHE_DIR/etcd-$ETCD_VERSION/bin"
TOOLS_BIN="$CACHE_DIR/kind-tools-$KIND_VERSION/bin"
IMG_DIR="$CACHE_DIR/images"
NODE_PKGS=systemd,systemd-sysv,dbus,containerd,runc,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,jq,procps,conntrack,containernetworking-plugins,e2fsprogs
MINI_PKGS=iptables,nftables,conntrack,iproute2,kmod

build_lock "$CACHE_DIR/images/node-image"  # hack/build-tools.sh --images may be at it too
if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ] && [ -z "${1:-}" ]; then
  log "$NODE_IMAGE present (FORCE=1 rebuilds)"; exit 0
fi
"$HACK_DIR/docker.sh"
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
command -v containerd >/dev/null || die "host containerd missing (it comes with docker.io); run hack/docker.sh"
mkdir -p "$IMG_DIR" "$CACHE_DIR/build"
WORK=$(mktemp -d "$CACHE_DIR/build/node-image.XXXXXX")
cleanup() {
  [ -n "${CTRD_PID:-}" ] && kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
total_start=$(date +%s)

# rootfs_tar NAME PACKAGES: a cached debootstrap tarball.
rootfs_tar() {
  local tarball="$IMG_DIR/$1-bookworm.tar"
  if [ ! -f "$tarball" ]; then
    local root="$WORK/debootstrap-$1" start; start=$(date +%s)
    log "debootstrap $1 rootfs (cold: ~2-4 min)"
    debootstrap --variant=minbase --include="$2" bookworm "$root" "$MIRROR" >"$WORK/$1.log" 2>&1 \
      || die "debootstrap failed, see $WORK/$1.log (set DEBIAN_MIRROR to another mirror)"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
    tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    log "$1 rootfs: $(du -h "$tarball" | cut -f1) in $(( $(date +%s) - start ))s"
  fi
  echo "$tarball"
}

# ---- 0. cached rootfs tarballs (network-bound; `--rootfs-only` stops here to warm the cache) ----
NODE_TAR=$(rootfs_tar node "$NODE_PKGS")
MINI_TAR=$(rootfs_tar mini "$MINI_PKGS")
[ "${1:-}" = "--rootfs-only" ] && { log "rootfs tarballs cached"; exit 0; }
"$HACK_DIR/build-k8s.sh"; "$HACK_DIR/build-etcd.sh"; "$HACK_DIR/build-kind-tools.sh"

# ---- 1. component images -------------------------------------------------------------------
mapfile -t KUBEADM_IMAGES < <("$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
img() { printf '%s\n' "${KUBEADM_IMAGES[@]}" | grep -E "/$1:" | sed -n 1p; }
PAUSE_IMAGE=$(img pause); ETCD_IMAGE=$(img etcd); COREDNS_IMAGE=$(img coredns)
[ -n "$PAUSE_IMAGE" ] && [ -n "$ETCD_IMAGE" ] || die "kubeadm config images list failed"
log "kubeadm images: ${KUBEADM_IMAGES[*]}"

MINI_BASE=trainforge/kind-mini-base:bookworm
docker image inspect "$MINI_BASE" >/dev/null 2>&1 || docker import "$MINI_TAR" "$MINI_BASE" >/dev/null

# scratch_image REF BINARY [ENTRYPOINT]: a one-binary image in /usr/local/bin (or / with entrypoint).
scratch_image() {
  local ref="$1" bin="$2" entry="${3:-}" ctx
  ctx="$WORK/ctx-$(basename "$2")"
  mkdir -p "$ctx"; cp "$bin" "$ctx/"
  if [ -n "$entry" ]; then
    printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$(basename "$bin")" "$(basename "$bin")" "$(basename "$bin")" > "$ctx/Dockerfile"
  else
    printf 'FROM scratch\nENV PATH=/usr/local/bin:/usr/bin:/bin\nCOPY %s /usr/local/bin/\n' "$(basename "$bin")" > "$ctx/Dockerfile"
  fi
  docker build -q -t "$ref" "$ctx" >/dev/null
}
log "building component images"
for c in kube-apiserver kube-controller-manager kube-scheduler; do scratch_image "$(img "$c")" "$K8S_BIN/$c"; done
scratch_image "$ETCD_IMAGE" "$ETCD_BIN/etcd"
scratch_image "$COREDNS_IMAGE" "$TOOLS_BIN/coredns" entry
scratch_image "$PAUSE_IMAGE" "$TOOLS_BIN/pause" entry
mkdir -p "$WORK/ctx-proxy"; cp "$K8S_BIN/kube-proxy" "$WORK/ctx-proxy/"
printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/\n' "$MINI_BASE" > "$WORK/ctx-proxy/Dockerfile"
docker build -q -t "$(img kube-proxy)" "$WORK/ctx-proxy" >/dev/null
docker save -o "$WORK/images.tar" "${KUBEADM_IMAGES[@]}"

# ---- 2. node rootfs ------------------------------------------------------------------------
ROOT="$WORK/rootfs"; mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$NODE_TAR"
KIND_SRC=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
FILES="$KIND_SRC/images/base/files"
log "adding kind $KIND_VERSION base files, binaries and tweaks"
install -m 0755 "$FILES"/usr/local/bin/* "$ROOT/usr/local/bin/"
mkdir -p "$ROOT/kind/bin" "$ROOT/kind/manifests" "$ROOT/etc/kubernetes/manifests" "$ROOT/etc/systemd/system/kubelet.service.d"
install -m 0755 "$FILES"/kind/bin/* "$ROOT/kind/bin/"
install -m 0644 "$FILES"/etc/crictl.yaml "$ROOT/etc/"
install -m 0644 -D "$FILES"/etc/containerd/config.toml "$ROOT/etc/containerd/config.toml"
install -m 0644 "$FILES"/etc/default/kubelet "$ROOT/etc/default/kubelet"
install -m 0644 "$FILES"/etc/sysctl.d/* "$ROOT/etc/sysctl.d/"
install -m 0644 "$FILES"/etc/systemd/system/*.service "$FILES"/etc/systemd/system/*.slice "$ROOT/etc/systemd/system/"
install -m 0644 "$FILES"/etc/systemd/system/kubelet.service.d/* "$ROOT/etc/systemd/system/kubelet.service.d/"
chmod 0755 "$ROOT/kind" "$ROOT/kind/bin"
# Debian paths and this machine's quirks (notes: offline-clusters.md §4.1, §5.1).
ln -sf /usr/bin/containerd "$ROOT/usr/local/bin/containerd"
rm -rf "$ROOT/opt/cni/bin"; mkdir -p "$ROOT/opt/cni"; ln -s /usr/lib/cni "$ROOT/opt/cni/bin"
sed -i -E "s#^( *sandbox_image = ).*#\\1\"$PAUSE_IMAGE\"#; s#^( *restrict_oom_score_adj = ).*#\\1true#" "$ROOT/etc/containerd/config.toml"
grep -q "restrict_oom_score_adj = true" "$ROOT/etc/containerd/config.toml" || die "config.toml patch failed"
chroot "$ROOT" ctr oci spec \
  | jq '.hooks.createContainer += [{"path": "/kind/bin/mount-product-files.sh"}] | del(.process.rlimits)' \
  > "$ROOT/etc/containerd/cri-base.json"
install -m 0755 "$K8S_BIN/kubeadm" "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$ROOT/usr/bin/"
install -m 0755 "$TOOLS_BIN/crictl" "$ROOT/usr/local/bin/"
echo "$K8S_VERSION" > "$ROOT/kind/version"
# systemd trimming as in kind's base image.
rm -f "$ROOT"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service \
  "$ROOT"/lib/systemd/system/multi-user.target.wants/* "$ROOT"/etc/systemd/system/*.wants/* \
  "$ROOT"/lib/systemd/system/local-fs.target.wants/* "$ROOT"/lib/systemd/system/sockets.target.wants/*udev* \
  "$ROOT"/lib/systemd/system/sockets.target.wants/*initctl* "$ROOT"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$ROOT/etc/systemd/journald.conf"
chroot "$ROOT" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
chroot "$ROOT" systemctl mask systemd-binfmt.service >/dev/null 2>&1
rm -f "$ROOT/etc/machine-id" "$ROOT/var/lib/dbus/machine-id"; touch "$ROOT/etc/machine-id"

# ---- 3. preload images with a throw-away host containerd -----------------------------------
log "preloading ${#KUBEADM_IMAGES[@]} images into the rootfs containerd (k8s.io namespace)"
mkdir -p "$WORK/ctrd-state"
cat > "$WORK/ctrd.toml" <<TOML
version = 2
root = "$ROOT/var/lib/containerd"
state = "$WORK/ctrd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/ctrd.sock"
TOML
detached containerd --config "$WORK/ctrd.toml" >"$WORK/ctrd.log" 2>&1
CTRD_PID=$!
for _ in $(seq 1 50); do [ -S "$WORK/ctrd.sock" ] && break; sleep 0.2; done
ctr --address "$WORK/ctrd.sock" -n k8s.io images import --no-unpack --all-platforms --digests "$WORK/images.tar" >/dev/null
for ref in "${KUBEADM_IMAGES[@]}"; do
  ctr --address "$WORK/ctrd.sock" -n k8s.io images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
done
kill "$CTRD_PID"; wait "$CTRD_PID" 2>/dev/null || true; CTRD_PID=""
rm -rf "$ROOT/var/lib/containerd/io.containerd.runtime.v2.task" "$ROOT/var/lib/containerd/tmpmounts"

# ---- 4. import --------------------------------------------------------------------------------
log "docker import of the node rootfs"
tar --numeric-owner -C "$ROOT" -c . | docker import - "offline.local/kind-rootfs:$K8S_VERSION" >/dev/null
mkdir -p "$WORK/ctx-node"
cat > "$WORK/ctx-node/Dockerfile" <<DOCKER
FROM offline.local/kind-rootfs:$K8S_VERSION
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
DOCKER
docker build -q -t "$NODE_IMAGE" "$WORK/ctx-node" >/dev/null
docker rmi "offline.local/kind-rootfs:$K8S_VERSION" >/dev/null 2>&1 || true
log "$NODE_IMAGE built in $(( $(date +%s) - total_start ))s ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
