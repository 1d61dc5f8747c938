#!/usr/bin/env bash
# Build kwok (fake kubelets driven by Stage documents) and kwokctl from the Go module proxy.
# Output: $CACHE_DIR/kwok-$KWOK_VERSION/bin/{kwok,kwokctl}; prints the kwok path on stdout.
source "$(dirname "$0")/lib.sh"
go_tool kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
  -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
