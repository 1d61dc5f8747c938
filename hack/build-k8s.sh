#!/usr/bin/env bash
# Build the Kubernetes binaries from the Go module proxy (no release downloads are reachable here).
# k8s.io/kubernetes cannot be `go install`ed because its go.mod replaces the staging modules with
# local paths, so we build through a wrapper module that pins each staging module to v0.<minor>.<patch>.
# Output: $CACHE_DIR/k8s-$K8S_VERSION/bin/{kube-apiserver,...}
source "$(dirname "$0")/lib.sh"
OUT="$CACHE_DIR/k8s-$K8S_VERSION"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
build_lock "$OUT"
if stamp_ok "$OUT"; then log "k8s $K8S_VERSION cached at $OUT/bin"; exit 0; fi
go_env
WORK="$CACHE_DIR/build/k8s-$K8S_VERSION"
mkdir -p "$WORK" "$OUT/bin"
cd "$WORK"

log "resolving k8s.io/kubernetes@$K8S_VERSION from the module proxy"
info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
moddir=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])' <<<"$info")
commit=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Origin",{}).get("Hash") or "0"*40)' <<<"$info")
gover=$(awk '$1=="go"{print $2; exit}' "$moddir/go.mod")
godebug=$(awk '$1=="godebug"{print; exit}' "$moddir/go.mod")
minor_patch="${K8S_VERSION#v1.}"   # 34.4
staging=$(grep -oE 'k8s.io/[a-z0-9-]+ => ./staging' "$moddir/go.mod" | awk '{print $1}' | sort -u)
[ -n "$staging" ] || die "no staging replaces found in $moddir/go.mod"
log "wrapper module: go $gover, $(wc -w <<<"$staging") staging modules at v0.$minor_patch, commit ${commit:0:12}"

{
  echo "module offline.local/k8sbuild"
  echo
  echo "go $gover"
  [ -n "$godebug" ] && echo "$godebug"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m v0.$minor_patch"; done
  echo ")"
} > go.mod
cat > tools.go <<TOOLS
//go:build tools

package tools

import (
$(for c in "${COMPONENTS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done)
)
TOOLS
log "go mod tidy (downloads ~1 GB of modules on a cold cache)"
go mod tidy

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
major=1; minor="${minor_patch%%.*}"
vflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  vflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
pkgs=(); for c in "${COMPONENTS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
log "compiling ${COMPONENTS[*]} (cold: 30-50 min on 2 cores; warm GOCACHE: minutes)"
start=$(date +%s)
go build -tags notest -ldflags "-s -w $vflags" -o "$OUT/bin/" "${pkgs[@]}"
log "compiled in $(( $(date +%s) - start ))s"
"$OUT/bin/kube-apiserver" --version
stamp_write "$OUT"
log "k8s $K8S_VERSION ready in $OUT/bin"
