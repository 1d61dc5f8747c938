#!/usr/bin/env bash
# `make images REGISTRY=<registry>/<path>`: build the operator and worker images with
# hack/build-images.sh, tagged <registry>/<path>/trainforge/{operator,worker}:<chart appVersion>,
# push both, and print the helm flags that point the chart at them.
# The tag is the chart's appVersion (charts/trainforge/Chart.yaml), which must equal
# TRAINFORGE_VERSION (hack/versions.env), so the chart's default tag names the pushed image.
# DRY_RUN=1 prints the image names and the commands without building or pushing.
source "$(dirname "$0")/lib.sh"
REGISTRY="${REGISTRY:-}"
[ -n "$REGISTRY" ] || die "set REGISTRY, e.g. make images REGISTRY=ghcr.io/my-org"
REGISTRY="${REGISTRY%/}"
CHART="$REPO_ROOT/charts/trainforge/Chart.yaml"
TAG=$(awk -F'"' '/^appVersion:/{print $2}' "$CHART")
[ -n "$TAG" ] || die "no appVersion in $CHART"
[ "$TAG" = "$TRAINFORGE_VERSION" ] \
  || die "chart appVersion $TAG != TRAINFORGE_VERSION $TRAINFORGE_VERSION (hack/versions.env): align them"
export OPERATOR_IMAGE="$REGISTRY/trainforge/operator:$TAG"
export WORKER_IMAGE="$REGISTRY/trainforge/worker:$TAG"

run() { if [ "${DRY_RUN:-0}" = 1 ]; then echo "+ $*"; else "$@"; fi; }

log "building $OPERATOR_IMAGE and $WORKER_IMAGE"
run "$HACK_DIR/build-images.sh" operator worker
for image in "$OPERATOR_IMAGE" "$WORKER_IMAGE"; do
  log "docker push $image"
  run docker push "$image" >&2 || die "docker push $image failed: run 'docker login ${REGISTRY%%/*}' and retry"
done
cat <<HELM
# Install the chart with these images:
helm install trainforge charts/trainforge -n trainforge-system --create-namespace \\
  --set image.repository=$REGISTRY/trainforge/operator \\
  --set image.tag=$TAG \\
  --set config.defaultImage=$WORKER_IMAGE
HELM
