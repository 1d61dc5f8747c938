#!/usr/bin/env bash
# Build etcd from the Go module proxy. go.etcd.io/etcd/server/v3 carries `replace => ../api` lines,
# so `go install` refuses it; a one-line wrapper module that requires it by version works.
# Output: $CACHE_DIR/etcd-$ETCD_VERSION/bin/etcd
source "$(dirname "$0")/lib.sh"
OUT="$CACHE_DIR/etcd-$ETCD_VERSION"
build_lock "$OUT"
if stamp_ok "$OUT"; then log "etcd $ETCD_VERSION cached at $OUT/bin"; exit 0; fi
go_env
WORK="$CACHE_DIR/build/etcd-$ETCD_VERSION"
mkdir -p "$WORK" "$OUT/bin"
cd "$WORK" || exit 1
cat > go.mod <<MOD
module offline.local/etcdbuild

go 1.24
MOD
cat > tools.go <<'TOOLS'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
TOOLS
log "resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION"
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
go mod tidy
log "compiling etcd $ETCD_VERSION (cold: ~3-6 min on 2 cores)"
start=$(date +%s)
nice -n 10 go build -ldflags "-s -w" -o "$OUT/bin/etcd" go.etcd.io/etcd/server/v3
log "compiled in $(( $(date +%s) - start ))s"
"$OUT/bin/etcd" --version | sed -n 1p  # not head: an early close is SIGPIPE under pipefail
stamp_write "$OUT"
log "etcd $ETCD_VERSION ready in $OUT/bin"
