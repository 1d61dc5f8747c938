#!/usr/bin/env bash
# Build the Go tools the kind tier needs besides Kubernetes itself: kind, crictl, CoreDNS and a
# pause binary. (kindnetd is not on the module proxy here; hack/kind/cni.sh wires pod networking.)
# Output: $CACHE_DIR/kind-tools-$KIND_VERSION/bin/{kind,crictl,coredns,pause}; prints that bin dir.
source "$(dirname "$0")/lib.sh"

# The proxy here refuses cri-tools' version list and sum.golang.org lookup, so `go install @v` fails;
# download the module zip (checksum DB skipped for it only) and build inside it.
build_crictl() {
  local bin=$1 dir
  export GONOSUMDB=sigs.k8s.io/cri-tools
  dir=$(go_mod_dir "sigs.k8s.io/cri-tools@$CRICTL_VERSION")
  (cd "$dir" && nice -n 10 go build -o "$bin/crictl" \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" ./cmd/crictl)
}

# build_kind_tools BIN_DIR MODULE VERSION: kind itself, then the others into the same bin dir
# (each skipped when an earlier, interrupted run already built it).
build_kind_tools() {
  local bin=$1 module=$2 version=$3
  log "kind $version, crictl $CRICTL_VERSION, coredns $COREDNS_VERSION, pause (cold: ~10-15 min)"
  [ -x "$bin/kind" ] || GOBIN="$bin" nice -n 10 go install -ldflags "-s -w" "$module@$version"
  [ -x "$bin/crictl" ] || (build_crictl "$bin")
  [ -x "$bin/coredns" ] || GOBIN="$bin" nice -n 10 go install -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  (cd "$HACK_DIR/kind/pause" && GO111MODULE=off nice -n 10 go build -ldflags "-s -w" -o "$bin/pause" main.go)
  smoke_test "$bin/kind" version
}
go_tool --build build_kind_tools kind-tools "sigs.k8s.io/kind@$KIND_VERSION"
