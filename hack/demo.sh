#!/usr/bin/env bash
# The main job end to end on a local kind cluster (built and run fully offline):
#   hack/demo.sh        create/reuse the cluster (hack/e2e-up.sh), run examples/digits-ddp.yaml,
#                       stream phase/step/loss, print the final status, test accuracy, artifact URI
#                       and how to open the report and Prometheus.
#   hack/demo.sh down   delete the cluster and its local state.
source "$(dirname "$0")/e2e-lib.sh"
JOB_FILE="${JOB_FILE:-$REPO_ROOT/examples/digits-ddp.yaml}"
TIMEOUT="${DEMO_TIMEOUT:-1800}"

if [ "${1:-}" = "down" ]; then
  if [ -x "$KIND" ] && cluster_exists; then
    log "deleting kind cluster $CLUSTER"; "$KIND" delete cluster --name "$CLUSTER" >&2
  else
    log "no kind cluster $CLUSTER"
  fi
  if docker inspect "$REGISTRY" >/dev/null 2>&1; then
    log "removing the local registry container and its volume"
    docker rm -f "$REGISTRY" >/dev/null; docker volume rm "$REGISTRY" >/dev/null 2>&1 || true
  fi
  rm -rf "$E2E_DIR"; log "removed $E2E_DIR (built images and tool caches are kept)"; exit 0
fi

"$HACK_DIR/e2e-up.sh" >/dev/null
set -a; source "$E2E_DIR/endpoints.env"; set +a
job=$(k create --dry-run=client -f "$JOB_FILE" -o jsonpath='{.metadata.name}')
k delete trainingjob "$job" --ignore-not-found --wait=true >/dev/null
k apply -f "$JOB_FILE" >/dev/null
log "submitted TrainingJob $job; streaming phase / step / loss (Ctrl-C stops watching, not the job)"
start=$(date +%s); last=""
fmt='{.status.phase}|{.status.progress.step}|{.status.progress.totalSteps}|{.status.progress.metrics.loss}|{.status.progress.percent}|{.status.workers.running}|{.status.message}'
while :; do
  IFS='|' read -r phase step total loss pct running msg < <(k get trainingjob "$job" -o jsonpath="$fmt" 2>/dev/null; echo)
  line="phase=${phase:-?} step=${step:--}/${total:--} loss=${loss:--} (${pct:-0}%) running=${running:-0} ${msg}"
  [ "$line" != "$last" ] && { printf '[%4ds] %s\n' "$(( $(date +%s) - start ))" "$line"; last="$line"; }
  case "$phase" in Succeeded|Failed) break ;; esac
  (( $(date +%s) - start > TIMEOUT )) && { log "timed out after ${TIMEOUT}s"; break; }
  sleep 3
done

echo; echo "== final status of $job"
k get trainingjob "$job" -o json | jq '.status | {phase, message, restarts, attempt, results, artifacts, lastFailure, findings}'
acc=$(k get trainingjob "$job" -o json | jq -r '[.status.results // {} | to_entries[] | select(.key | test("test.*acc|acc.*test")) | .value][0] // "n/a"')
uri=$(k get trainingjob "$job" -o jsonpath='{.status.artifacts.uri}')
# Fetch the artifacts (model, metrics, HTML report) from MinIO into trainforge-output/ (gitignored).
out="$REPO_ROOT/trainforge-output/demo/$job"
report=""
if [ -n "$uri" ]; then
  set -a; source "$E2E_DIR/minio.env"; set +a
  report=$("$PY" - "$MINIO_ENDPOINT" "$uri" "$out" <<'PY'
import pathlib, sys

import botocore.session

endpoint, uri, out = sys.argv[1:4]
bucket, _, prefix = uri.removeprefix("s3://").partition("/")
s3 = botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name="us-east-1")
report = ""
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for obj in page.get("Contents", []):
        dest = pathlib.Path(out) / obj["Key"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        if dest.suffix == ".html":
            report = str(dest)
print(report)
PY
) || log "could not download the artifacts from $MINIO_ENDPOINT"
fi
cat <<TXT

test accuracy : $acc
artifact URI  : ${uri:-n/a}  (downloaded to $out)
report        : ${report:-no HTML report among the artifacts}  (open it in a browser)
Prometheus    : $PROMETHEUS_URL  (e.g. $PROMETHEUS_URL/graph?g0.expr=trainforge_train_loss)
MinIO         : $MINIO_ENDPOINT  (credentials: $E2E_DIR/minio.env)
kubectl       : export KUBECONFIG=$KUBECONFIG
remove it all : hack/demo.sh down
TXT
[ "$phase" = Succeeded ]
