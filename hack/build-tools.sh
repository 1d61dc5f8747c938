#!/usr/bin/env bash
# Build every Go tool the test tiers need (helm, MinIO, etcd, kwok, Kubernetes, kind tools, the
# image registry), each cached by version, and print how long each took. With --images, also the
# images the kind tier needs: the kind node image, and the base, worker and operator images.
#
# Two lanes run side by side: Kubernetes (the long one) in one, the rest in the other. On two
# cores that keeps the CPU busy while the other lane downloads modules or links single-threaded.
# `make test` starts this in the background first thing, so the builds overlap the lint and unit
# tiers; each tier's own build call waits on the same per-tool lock instead of building twice.
# Usage: hack/build-tools.sh [--images]   (timings also appended to $CACHE_DIR/build-tools.log)
source "$(dirname "$0")/lib.sh"
LOG_FILE="$CACHE_DIR/build-tools.log"
TIMES=$(mktemp); trap 'rm -f "$TIMES"' EXIT

timed() {  # timed NAME SCRIPT: run one build script, record its wall time
  local name=$1 script=$2 start rc=0
  start=$(date +%s)
  "$HACK_DIR/$script" >/dev/null || rc=$?
  printf '%-12s %5ds  %s\n' "$name" "$(( $(date +%s) - start ))" "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")" >>"$TIMES"
  return $rc
}

IMAGES=0; [ "${1:-}" = "--images" ] && IMAGES=1
# A failed step does not stop its lane: the tier that needs that tool runs its script again and
# reports the error itself; the other tools still get built meanwhile.
lane_kubernetes() {
  local rc=0
  timed kubernetes build-k8s.sh || rc=1
  timed kind-tools build-kind-tools.sh || rc=1
  if [ $IMAGES = 1 ]; then
    # The node image also needs etcd (the other lane builds it early; this waits on its lock).
    { timed etcd build-etcd.sh && timed node-image build-node-image.sh; } || rc=1
  fi
  return $rc
}
lane_rest() {
  local rc=0 step
  # In the order make test's lanes first need them (cold): etcd and kwok for the control-plane
  # lane (with Kubernetes from the other lane), MinIO for the runtime tier, helm for lint-chart.
  for step in etcd:build-etcd.sh kwok:build-kwok.sh minio:build-minio.sh helm:build-helm.sh \
    registry:build-registry.sh; do
    timed "${step%%:*}" "${step#*:}" || rc=1
  done
  [ $IMAGES = 0 ] || timed images build-images.sh || rc=1
  return $rc
}

start=$(date +%s)
log "building tools in two lanes (cold: the Kubernetes lane dominates; warm: seconds)"
lane_kubernetes & k8s_pid=$!
lane_rest & rest_pid=$!
rc=0
wait $k8s_pid || rc=$?
wait $rest_pid || rc=$?
{
  echo "# hack/build-tools.sh $(date -u +%FT%TZ) total $(( $(date +%s) - start ))s"
  cat "$TIMES"
} | tee -a "$LOG_FILE" >&2
[ $rc = 0 ] || die "a tool build failed (see above); re-run the failing hack/build-*.sh by hand for its log"
