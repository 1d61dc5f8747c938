#!/usr/bin/env bash
# Build etcd from the Go module proxy. go.etcd.io/etcd/server/v3 carries `replace => ../api` lines,
# so `go install` refuses it; a one-line wrapper module that requires it by version works.
# Output: $CACHE_DIR/etcd-$ETCD_VERSION/bin/etcd; prints that path on stdout.
source "$(dirname "$0")/lib.sh"

# build_etcd BIN_DIR MODULE VERSION: `go build` through the wrapper module.
build_etcd() (
  local bin=$1 module=$2 version=$3 work="$CACHE_DIR/build/etcd-$3"
  mkdir -p "$work"; cd "$work"
  printf 'module offline.local/etcdbuild\n\ngo %s\n' "$GO_MIN_VERSION" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$module" > tools.go
  log "resolving $module@$version"
  go get "$module@$version"
  go mod tidy
  nice -n 10 go build -ldflags "-s -w" -o "$bin/etcd" "$module"
  smoke_test "$bin/etcd" --version
)
go_tool --build build_etcd etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
