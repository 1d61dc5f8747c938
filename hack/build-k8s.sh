#!/usr/bin/env bash
# Build the Kubernetes binaries from the Go module proxy (no release downloads are reachable here).
# k8s.io/kubernetes cannot be `go install`ed because its go.mod replaces the staging modules with
# local paths, so we build through a wrapper module that pins each staging module to v0.<minor>.<patch>.
# Output: $CACHE_DIR/k8s-$K8S_VERSION/bin/{kube-apiserver,...}; prints that bin dir on stdout.
source "$(dirname "$0")/lib.sh"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)

# wrapper_module MODDIR VERSION: go.mod and tools.go of a module that requires k8s.io/kubernetes
# with each staging module replaced by its published v0.<minor>.<patch>.
wrapper_module() {
  local moddir=$1 version=$2 gover godebug staging m c
  gover=$(awk '$1=="go"{print $2; exit}' "$moddir/go.mod")
  godebug=$(awk '$1=="godebug"{print; exit}' "$moddir/go.mod")
  staging=$(grep -oE 'k8s.io/[a-z0-9-]+ => ./staging' "$moddir/go.mod" | awk '{print $1}' | sort -u)
  [ -n "$staging" ] || die "no staging replaces found in $moddir/go.mod"
  log "wrapper module: go $gover, $(wc -w <<<"$staging") staging modules at v0.${version#v1.}"
  {
    echo "module offline.local/k8sbuild"
    echo
    echo "go $gover"
    [ -n "$godebug" ] && echo "$godebug"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m v0.${version#v1.}"; done
    echo ")"
  } > go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${COMPONENTS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } > tools.go
}

# version_ldflags VERSION COMMIT: what `kubectl version` and `kube-apiserver --version` report.
version_ldflags() {
  local version=$1 commit=$2 minor build_date pkg flags=""
  minor=${version#v1.}; minor=${minor%%.*}
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  echo "$flags"
}

# build_k8s BIN_DIR MODULE VERSION: every component in one `go build` of the wrapper module.
build_k8s() (
  local bin=$1 module=$2 version=$3 work="$CACHE_DIR/build/k8s-$3" moddir commit c pkgs=()
  mkdir -p "$work"; cd "$work"
  log "resolving $module@$version from the module proxy"
  moddir=$(go_mod_dir "$module@$version")
  commit=$(go mod download -json "$module@$version" | json_field Origin.Hash)
  [ -n "$commit" ] || commit=$(printf '%040d' 0)   # the proxy may not say which commit
  wrapper_module "$moddir" "$version"
  log "go mod tidy (downloads ~1 GB of modules on a cold cache)"
  go mod tidy
  for c in "${COMPONENTS[@]}"; do pkgs+=("$module/cmd/$c"); done
  log "compiling ${COMPONENTS[*]} (cold: 30-50 min on 2 cores; warm GOCACHE: minutes)"
  go build -tags notest -ldflags "-s -w $(version_ldflags "$version" "$commit")" -o "$bin/" "${pkgs[@]}"
  smoke_test "$bin/kube-apiserver" --version
)
go_tool --build build_k8s k8s "k8s.io/kubernetes@$K8S_VERSION"
