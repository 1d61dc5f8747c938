#!/usr/bin/env bash
# The in-cluster services of the e2e cluster (hack/e2e-cluster.sh makes the cluster), in
# trainforge-system: MinIO (S3 for checkpoints and artifacts, bucket `trainforge`, random root
# credentials in $E2E_DIR/minio.env) and Prometheus, from hack/kind/addons.yaml, on NodePorts
# 30900 and 30090 of the control-plane node. Their images are built here once:
# hack/images/{minio,prometheus}.Dockerfile, MinIO from hack/build-minio.sh, Prometheus from
# Debian's package. Writes $E2E_DIR/endpoints.env and prints `export KUBECONFIG=...` on stdout.
# Usage: hack/e2e-addons.sh
source "$(dirname "$0")/e2e-lib.sh"
MINIO_IMAGE=trainforge/minio:local
PROMETHEUS_IMAGE=trainforge/prometheus:local

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

minio_image() {
  local minio
  image_present "$MINIO_IMAGE" && return 0
  minio=$("$HACK_DIR/build-minio.sh")
  file_image "$MINIO_IMAGE" minio.Dockerfile --build-arg MINI_BASE="$MINI_BASE_IMAGE" "$minio"
}

prometheus_image() (
  image_present "$PROMETHEUS_IMAGE" && return 0
  command -v prometheus >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
  local ctx; ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
  cp "$(command -v prometheus)" "$KUBECTL" "$ctx/"
  cp -r /usr/share/prometheus "$ctx/share" 2>/dev/null || mkdir -p "$ctx/share"
  docker_image "$PROMETHEUS_IMAGE" prometheus.Dockerfile "$ctx" --build-arg MINI_BASE="$MINI_BASE_IMAGE"
)

# minio_credentials: random root credentials, made once per cluster state dir, as two Secrets.
minio_credentials() {
  local ns name
  if [ ! -f "$E2E_DIR/minio.env" ]; then
    (umask 077; printf 'AWS_ACCESS_KEY_ID=trainforge\nAWS_SECRET_ACCESS_KEY=%s\n' \
      "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" > "$E2E_DIR/minio.env")
  fi
  for ns in trainforge-system default; do
    name="minio-creds"; [ "$ns" = trainforge-system ] && name="minio-root"
    k -n "$ns" create secret generic "$name" --from-env-file="$E2E_DIR/minio.env" --dry-run=client -o yaml | k apply -f - >/dev/null
  done
}

# create_bucket ENDPOINT: the `trainforge` bucket (the NodePort may lag the rollout by a moment).
create_bucket() (
  set -a; source "$E2E_DIR/minio.env"; set +a
  "$PY" - "$1" <<'PY'
import sys
import time

import botocore.exceptions
import botocore.session

s3 = botocore.session.get_session().create_client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
for _ in range(30):
    try:
        s3.create_bucket(Bucket="trainforge")
        break
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            break
        # Right after dockerd restarts the cluster, the NodePort can answer 404/503 before
        # kube-proxy routes it to MinIO: wait for it like a refused connection.
        if e.response["ResponseMetadata"].get("HTTPStatusCode") not in (404, 502, 503):
            raise
        time.sleep(1)
    except botocore.exceptions.EndpointConnectionError:
        time.sleep(1)
else:
    sys.exit("MinIO NodePort not reachable")
PY
)

step "add-on images (MinIO from hack/build-minio.sh, Prometheus from Debian's package)"
[ -x "$KUBECTL" ] || "$HACK_DIR/build-k8s.sh" >/dev/null
image_present "$MINI_BASE_IMAGE" || die "no $MINI_BASE_IMAGE: run hack/build-node-image.sh (FORCE=1)"
minio_image
prometheus_image
done_step

step "MinIO and Prometheus"
cluster_exists || die "no kind cluster $CLUSTER: run hack/e2e-cluster.sh first"
k create namespace trainforge-system --dry-run=client -o yaml | k apply -f - >/dev/null
minio_credentials
"$KIND" load docker-image --name "$CLUSTER" --nodes "$CLUSTER-control-plane" "$MINIO_IMAGE" "$PROMETHEUS_IMAGE" >&2
applied=$(k apply -f "$HACK_DIR/kind/addons.yaml")
# Prometheus does not watch its config file: restart it when the ConfigMap changed.
if grep -q "configmap/prometheus configured" <<<"$applied"; then
  k -n trainforge-system rollout restart deploy/prometheus >/dev/null
fi
k -n trainforge-system rollout status deploy/minio --timeout=180s >/dev/null
k -n trainforge-system rollout status deploy/prometheus --timeout=180s >/dev/null
CP_IP=$(control_plane_ip)
create_bucket "http://$CP_IP:30900"
cat > "$E2E_DIR/endpoints.env" <<ENV
KUBECONFIG=$KUBECONFIG
MINIO_ENDPOINT=http://$CP_IP:30900
PROMETHEUS_URL=http://$CP_IP:30090
ENV
done_step
log "MinIO http://$CP_IP:30900, Prometheus http://$CP_IP:30090"
print_kubeconfig
