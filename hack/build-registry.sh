#!/usr/bin/env bash
# Build the CNCF distribution registry from the Go module proxy. The e2e cluster pulls the large
# worker image from it (compressed, layers discarded after unpack) instead of `kind load`, which
# would keep an uncompressed copy plus an unpacked copy on every node.
# Output: $CACHE_DIR/registry-$REGISTRY_VERSION/bin/registry; prints that path on stdout.
source "$(dirname "$0")/lib.sh"
go_tool registry "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" -ldflags "-s -w"
