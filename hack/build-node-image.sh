#!/usr/bin/env bash
# Build the kind node image offline (`kind build node-image` needs a registry):
#   Debian $DEBIAN_SUITE rootfs (debootstrap: systemd, containerd 1.6.20, runc 1.1.5, CNI plugins)
#   + kind's base files from the pinned kind module + the project-built Kubernetes binaries
#   + component images (apiserver, controller-manager, scheduler, proxy, etcd, coredns, pause)
#     preloaded into containerd's k8s.io namespace by a throw-away host containerd
#   -> docker import + hack/images/kind-node.Dockerfile (ENV/STOPSIGNAL/ENTRYPOINT)  => $NODE_IMAGE
source "$(dirname "$0")/lib.sh"
K8S_BIN="$(tool_dir k8s "$K8S_VERSION")/bin"
ETCD_BIN="$(tool_dir etcd "$ETCD_VERSION")/bin"
TOOLS_BIN="$(tool_dir kind-tools "$KIND_VERSION")/bin"
IMG_DIR="$CACHE_DIR/images"
NODE_PKGS=systemd,systemd-sysv,dbus,containerd,runc,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,jq,procps,conntrack,containernetworking-plugins,e2fsprogs
MINI_PKGS=iptables,nftables,conntrack,iproute2,kmod

build_lock "$CACHE_DIR/images/node-image"  # hack/build-tools.sh --images may be at it too
if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ] && [ -z "${1:-}" ]; then
  log "$NODE_IMAGE present (FORCE=1 rebuilds)"; exit 0
fi
"$HACK_DIR/docker.sh"
command -v containerd >/dev/null || die "host containerd missing (it comes with docker.io); run hack/docker.sh"
mkdir -p "$IMG_DIR" "$CACHE_DIR/build"
WORK=$(mktemp -d "$CACHE_DIR/build/node-image.XXXXXX")
cleanup() {
  [ -n "${CTRD_PID:-}" ] && kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
total_start=$(date +%s)

# ---- 0. cached rootfs tarballs (network-bound; `--rootfs-only` stops here to warm the cache) ----
NODE_TAR="$IMG_DIR/node-$DEBIAN_SUITE.tar"
MINI_TAR="$IMG_DIR/mini-$DEBIAN_SUITE.tar"
debootstrap_tar "$NODE_TAR" "$NODE_PKGS" "$WORK"
debootstrap_tar "$MINI_TAR" "$MINI_PKGS" "$WORK"
[ "${1:-}" = "--rootfs-only" ] && { log "rootfs tarballs cached"; exit 0; }
for tool in k8s etcd kind-tools; do "$HACK_DIR/build-$tool.sh" >/dev/null; done

# ---- 1. component images -------------------------------------------------------------------
mapfile -t KUBEADM_IMAGES < <("$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
img() { printf '%s\n' "${KUBEADM_IMAGES[@]}" | grep -E "/$1:" | sed -n 1p; }
PAUSE_IMAGE=$(img pause); ETCD_IMAGE=$(img etcd); COREDNS_IMAGE=$(img coredns)
[ -z "$PAUSE_IMAGE" ] || [ -z "$ETCD_IMAGE" ] && die "kubeadm config images list failed"
log "kubeadm images: ${KUBEADM_IMAGES[*]}"

docker image inspect "$MINI_BASE_IMAGE" >/dev/null 2>&1 || docker import "$MINI_TAR" "$MINI_BASE_IMAGE" >/dev/null

log "building component images (hack/images/*.Dockerfile)"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  file_image "$(img "$c")" k8s-component.Dockerfile "$K8S_BIN/$c"
done
file_image "$ETCD_IMAGE" k8s-component.Dockerfile "$ETCD_BIN/etcd"
file_image "$COREDNS_IMAGE" coredns.Dockerfile "$TOOLS_BIN/coredns"
file_image "$PAUSE_IMAGE" pause.Dockerfile "$TOOLS_BIN/pause"
file_image "$(img kube-proxy)" kube-proxy.Dockerfile --build-arg MINI_BASE="$MINI_BASE_IMAGE" "$K8S_BIN/kube-proxy"
docker save -o "$WORK/images.tar" "${KUBEADM_IMAGES[@]}"

# ---- 2. node rootfs ------------------------------------------------------------------------
ROOT="$WORK/rootfs"; mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$NODE_TAR"
KIND_SRC=$(go_mod_dir "sigs.k8s.io/kind@$KIND_VERSION")
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
# Debian's packages put containerd in /usr/bin and the CNI plugins in /usr/lib/cni, where kind
# expects /usr/local/bin and /opt/cni/bin; the sandbox image must be the preloaded pause, and
# containerd must not set oom_score_adj below the kind node's own (this VM refuses it).
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
tar --numeric-owner -C "$ROOT" -c . | image_from_rootfs - kind-node.Dockerfile "$NODE_IMAGE"
log "$NODE_IMAGE built in $(( $(date +%s) - total_start ))s ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
