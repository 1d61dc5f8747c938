#!/usr/bin/env bash
# Build Kueue's controller manager (sigs.k8s.io/kueue) from the Go module proxy, and copy its CRDs
# and RBAC out of the module zip, for the tiers that run jobs under real Kueue admission.
# Output: $CACHE_DIR/kueue-$KUEUE_VERSION/bin/kueue and .../config/{crd,rbac}; prints the binary
# path on stdout. Pinned explicitly: the proxy's version list is stale (@latest is far behind).
source "$(dirname "$0")/lib.sh"

# build_kueue BIN_DIR MODULE VERSION: `go install` the manager, then keep the module's manifests.
build_kueue() {
  local bin=$1 module=$2 version=$3 src
  GOBIN="$bin" nice -n 10 go install -ldflags "-s -w" "$module/cmd/kueue@$version" \
    || die "go install $module/cmd/kueue@$version failed: check the Go module proxy (go env GOPROXY)"
  smoke_test "$bin/kueue" --help   # the manager has no --version flag
  src=$(go_mod_dir "$module@$version")
  [ -d "$src/config/components/crd" ] || die "no config/components/crd in $module@$version ($src)"
  mkdir -p "$bin/../config"
  cp -r "$src/config/components/crd" "$src/config/components/rbac" "$bin/../config/"
  chmod -R u+w "$bin/../config"
}

go_tool --build build_kueue kueue "sigs.k8s.io/kueue@$KUEUE_VERSION"
