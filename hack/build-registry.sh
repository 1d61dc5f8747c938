#!/usr/bin/env bash
# Build the CNCF distribution registry from the Go module proxy. The e2e cluster pulls the large
# worker image from it (compressed, layers discarded after unpack) instead of `kind load`, which
# would keep an uncompressed copy plus an unpacked copy on every node.
# Output: $CACHE_DIR/registry-$REGISTRY_VERSION/bin/registry
source "$(dirname "$0")/lib.sh"
REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.2}"
OUT="$CACHE_DIR/registry-$REGISTRY_VERSION"
build_lock "$OUT"
if stamp_ok "$OUT"; then log "registry $REGISTRY_VERSION cached at $OUT/bin"; echo "$OUT/bin/registry"; exit 0; fi
go_env
mkdir -p "$OUT/bin"
log "compiling registry $REGISTRY_VERSION (cold: ~3-5 min on 2 cores)"
start=$(date +%s)
GOBIN="$OUT/bin" nice -n 10 go install -ldflags "-s -w" \
  "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" >&2
log "compiled in $(( $(date +%s) - start ))s"
stamp_write "$OUT"
echo "$OUT/bin/registry"
