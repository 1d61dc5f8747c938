#!/usr/bin/env bash
# Build kwok (fake kubelets driven by Stage documents) and kwokctl from the Go module proxy.
# Output: $CACHE_DIR/kwok-$KWOK_VERSION/bin/{kwok,kwokctl}
source "$(dirname "$0")/lib.sh"
OUT="$CACHE_DIR/kwok-$KWOK_VERSION"
build_lock "$OUT"
if stamp_ok "$OUT"; then log "kwok $KWOK_VERSION cached at $OUT/bin"; exit 0; fi
go_env
mkdir -p "$OUT/bin"
log "compiling kwok + kwokctl $KWOK_VERSION (cold: ~5-10 min on 2 cores)"
start=$(date +%s)
GOBIN="$OUT/bin" nice -n 10 go install -ldflags "-s -w" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
log "compiled in $(( $(date +%s) - start ))s"
"$OUT/bin/kwok" --version 2>/dev/null | head -1 || true
stamp_write "$OUT"
log "kwok $KWOK_VERSION ready in $OUT/bin"
