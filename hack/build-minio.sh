#!/usr/bin/env bash
# Build the MinIO server from the Go module proxy: the community edition ships as source only
# (minio/minio#21709) and no container registry is reachable here. Tags are RELEASE.*, not
# semver, so the build is pinned to a pseudo-version (a commit; hack/versions.env).
# Output: $CACHE_DIR/minio-$MINIO_VERSION/bin/minio (a .done stamp marks a complete build)
# Usage: hack/build-minio.sh            build (or reuse) and print the binary's path on stdout
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
go_tool minio "github.com/minio/minio@$MINIO_VERSION"
