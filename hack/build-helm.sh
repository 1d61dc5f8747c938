#!/usr/bin/env bash
# Build helm from the Go module proxy (release tarballs on get.helm.sh are not reachable here).
# Output: $CACHE_DIR/helm-$HELM_VERSION/bin/helm ; prints that path on stdout so callers can
# `HELM=$(hack/build-helm.sh)`.
source "$(dirname "$0")/lib.sh"

# build_helm BIN_DIR PACKAGE VERSION: `go install` with what helm's own Makefile stamps in: its
# version, and the Kubernetes version it assumes for `helm template`/`helm lint`
# (.Capabilities.KubeVersion; without it helm claims v1.20 and any chart's kubeVersion constraint
# fails). That is the minor of the client-go helm builds against.
build_helm() {
  local bin=$1 package=$2 version=$3 moddir kminor ldflags pkg
  moddir=$(go_mod_dir "helm.sh/helm/v3@$version") \
    || die "cannot fetch helm.sh/helm/v3@$version: check the Go module proxy (go env GOPROXY)"
  kminor=$(awk '$1=="k8s.io/client-go"{split($2,v,"."); print v[2]; exit}' "$moddir/go.mod")
  [ -n "$kminor" ] || die "no k8s.io/client-go in $moddir/go.mod"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
  done
  log "helm $version for Kubernetes 1.$kminor"
  GOBIN="$bin" nice -n 10 go install -ldflags "$ldflags" "$package@$version" \
    || die "helm build failed: check that the Go module proxy is reachable (go env GOPROXY)"
  smoke_test "$bin/helm" version --short
}
go_tool --build build_helm helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
