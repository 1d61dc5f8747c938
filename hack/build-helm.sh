#!/usr/bin/env bash
# Build helm from the Go module proxy (release tarballs on get.helm.sh are not reachable here).
# Output: $CACHE_DIR/helm-$HELM_VERSION/bin/helm ; prints that path on stdout so callers can
# `HELM=$(hack/build-helm.sh)`.
source "$(dirname "$0")/lib.sh"
OUT="$CACHE_DIR/helm-$HELM_VERSION"
build_lock "$OUT"
if stamp_ok "$OUT"; then
  log "helm $HELM_VERSION cached at $OUT/bin"
  echo "$OUT/bin/helm"
  exit 0
fi
command -v go >/dev/null || die "go is not on PATH: install Go >= 1.24 to build helm"
go_env
mkdir -p "$OUT/bin"
# What helm's own Makefile stamps in: its version, and the Kubernetes version it assumes for
# `helm template`/`helm lint` (.Capabilities.KubeVersion; without it helm claims v1.20 and any
# chart's kubeVersion constraint fails). That is the minor of the client-go helm builds against.
moddir=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
  || die "cannot fetch helm.sh/helm/v3@$HELM_VERSION: check the Go module proxy (go env GOPROXY)"
kminor=$(awk '$1=="k8s.io/client-go"{split($2,v,"."); print v[2]; exit}' "$moddir/go.mod")
[ -n "$kminor" ] || die "no k8s.io/client-go in $moddir/go.mod"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
done
log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION for Kubernetes 1.$kminor (cold: ~5-10 min)"
start=$(date +%s)
GOBIN="$OUT/bin" nice -n 10 go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
  || die "helm build failed: check that the Go module proxy is reachable (go env GOPROXY)"
"$OUT/bin/helm" version --short >&2 || die "built helm does not run: remove $OUT and retry"
stamp_write "$OUT"
log "helm $HELM_VERSION built in $(( $(date +%s) - start ))s"
echo "$OUT/bin/helm"
