#!/usr/bin/env bash
# Build the Go tools the kind tier needs besides Kubernetes itself: kind, crictl, CoreDNS and a
# pause binary. (kindnetd is not on the module proxy here; e2e-up.sh wires pod networking itself.)
# Output: $CACHE_DIR/kind-tools-$KIND_VERSION/bin/{kind,crictl,coredns,pause}
source "$(dirname "$0")/lib.sh"
OUT="$CACHE_DIR/kind-tools-$KIND_VERSION"
build_lock "$OUT"
if stamp_ok "$OUT"; then log "kind tools cached at $OUT/bin"; exit 0; fi
go_env
mkdir -p "$OUT/bin"
start=$(date +%s)
log "compiling kind $KIND_VERSION, crictl $CRICTL_VERSION, coredns $COREDNS_VERSION (cold: ~10-15 min)"
gi() { GOBIN="$OUT/bin" nice -n 10 go install -ldflags "-s -w" "$@"; }
[ -x "$OUT/bin/kind" ] || gi "sigs.k8s.io/kind@$KIND_VERSION"
# The proxy here refuses cri-tools' version list and sum.golang.org lookup, so `go install @v` fails;
# download the module zip (checksum DB skipped for it only) and build inside it.
build_crictl() {
  local dir
  dir=$(GONOSUMDB=sigs.k8s.io/cri-tools go mod download -json "sigs.k8s.io/cri-tools@$CRICTL_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  (cd "$dir" && GONOSUMDB=sigs.k8s.io/cri-tools nice -n 10 go build -o "$OUT/bin/crictl" \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" ./cmd/crictl)
}
[ -x "$OUT/bin/crictl" ] || build_crictl
[ -x "$OUT/bin/coredns" ] || gi "github.com/coredns/coredns@$COREDNS_VERSION"
(cd "$HACK_DIR/kind/pause" && GO111MODULE=off nice -n 10 go build -ldflags "-s -w" -o "$OUT/bin/pause" main.go)
log "compiled in $(( $(date +%s) - start ))s"
"$OUT/bin/kind" version
stamp_write "$OUT"
log "kind tools ready in $OUT/bin"
