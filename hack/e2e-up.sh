#!/usr/bin/env bash
# Create (or reuse) the offline kind cluster for e2e tests and the demo:
#   1 control plane + 2 workers (fake GPU pool: label trainforge.io/pool=gpu, taint
#   nvidia.com/gpu=present:NoSchedule, nvidia.com/gpu capacity patched on the node status),
#   static pod networking, MinIO and Prometheus in trainforge-system, the operator and worker
#   images loaded, and the chart installed with helm.
# Prints `export KUBECONFIG=...` on stdout at the end. Usage: hack/e2e-up.sh [--no-operator]
source "$(dirname "$0")/lib.sh"
CLUSTER="${TRAINFORGE_CLUSTER:-trainforge-e2e}"
E2E_DIR="$CACHE_DIR/e2e/$CLUSTER"
export KUBECONFIG="$E2E_DIR/kubeconfig"
NODE_IMAGE="offline.local/kind-node:$K8S_VERSION"
KIND="$CACHE_DIR/kind-tools-$KIND_VERSION/bin/kind"
KUBECTL="$CACHE_DIR/k8s-$K8S_VERSION/bin/kubectl"
HELM="$CACHE_DIR/helm-$HELM_VERSION/bin/helm"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
INSTALL_OPERATOR=1; [ "${1:-}" = "--no-operator" ] && INSTALL_OPERATOR=0
mkdir -p "$E2E_DIR"
step() { STEP_START=$(date +%s); log "$*"; }
done_step() { log "  done in $(( $(date +%s) - STEP_START ))s"; }
k() { "$KUBECTL" "$@"; }

step "prerequisites: docker, binaries, node image, trainforge images"
"$HACK_DIR/docker.sh"
"$HACK_DIR/build-node-image.sh"
[ -x "$HELM" ] || "$HACK_DIR/build-helm.sh" >/dev/null
MINIO_BIN=$("$HACK_DIR/build-minio.sh")
if [ "$INSTALL_OPERATOR" = 1 ]; then
  "$HACK_DIR/build-images.sh" operator   # cheap: always rebuilt from the working tree
  # Always rebuilt so the cluster runs the current runtime code: the ~3 GB dependency layer is
  # cached (training_image/Dockerfile installs wheels before copying the code), so a code change
  # costs seconds here and a small layer push below.
  "$HACK_DIR/build-images.sh" worker
fi
done_step

step "addon images (MinIO from hack/build-minio.sh, Prometheus from Debian's package)"
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
if ! docker image inspect trainforge/minio:local >/dev/null 2>&1; then
  mkdir -p "$ctx/minio"; cp "$MINIO_BIN" "$ctx/minio/minio"
  printf 'FROM trainforge/kind-mini-base:bookworm\nCOPY minio /usr/local/bin/minio\nENTRYPOINT ["/usr/local/bin/minio"]\n' > "$ctx/minio/Dockerfile"
  docker build -q -t trainforge/minio:local "$ctx/minio" >/dev/null
fi
if ! docker image inspect trainforge/prometheus:local >/dev/null 2>&1; then
  command -v prometheus >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
  mkdir -p "$ctx/prom"; cp "$(command -v prometheus)" "$KUBECTL" "$ctx/prom/"
  cp -r /usr/share/prometheus "$ctx/prom/share" 2>/dev/null || mkdir -p "$ctx/prom/share"
  # kubectl feeds file_sd (Debian's build has no kubernetes_sd_configs), see hack/kind/addons.yaml.
  printf 'FROM trainforge/kind-mini-base:bookworm\nCOPY prometheus kubectl /usr/bin/\nCOPY share /usr/share/prometheus\nUSER 65534\nENTRYPOINT ["/usr/bin/prometheus"]\n' > "$ctx/prom/Dockerfile"
  docker build -q -t trainforge/prometheus:local "$ctx/prom" >/dev/null
fi
done_step

# A cluster left from an earlier run may have stopped with dockerd: start its nodes, and recreate it
# when its API server does not answer within two minutes.
api_ready() { k get --raw /readyz --request-timeout=5s >/dev/null 2>&1; }
reuse_cluster() {
  local nodes; nodes=$(docker ps -a -q --filter "label=io.x-k8s.kind.cluster=$CLUSTER")
  [ -n "$nodes" ] && docker start $nodes >/dev/null
  "$KIND" export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || return 1
  for _ in $(seq 1 24); do api_ready && return 0; sleep 5; done
  return 1
}
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
  if ! reuse_cluster; then
    log "kind cluster $CLUSTER does not answer: deleting it to start afresh"
    "$KIND" delete cluster --name "$CLUSTER" >&2
  fi
fi
if ! "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  step "kind create cluster $CLUSTER (1 control plane + 2 workers)"
  "$KIND" create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config "$HACK_DIR/kind/cluster.yaml" \
    --kubeconfig "$KUBECONFIG" --retain=false >&2 \
    || die "kind create failed; retry with: $KIND create cluster --name $CLUSTER --image $NODE_IMAGE --config hack/kind/cluster.yaml --retain, then $KIND export logs --name $CLUSTER"
  done_step
fi

step "pod network, node readiness, GPU pool"
"$HACK_DIR/kind/cni.sh" "$CLUSTER" "$KUBECONFIG"
k wait --for=condition=Ready nodes --all --timeout=180s >/dev/null
k taint nodes -l node-role.kubernetes.io/control-plane node-role.kubernetes.io/control-plane:NoSchedule- >/dev/null 2>&1 || true
for node in $(k get nodes -l trainforge.io/pool=gpu -o jsonpath='{.items[*].metadata.name}'); do
  k taint nodes "$node" nvidia.com/gpu=present:NoSchedule --overwrite >/dev/null
  # Extended resources without a device plugin survive until the kubelet restarts.
  k patch node "$node" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$GPUS_PER_NODE\"}]" >/dev/null
done
k -n kube-system rollout status deploy/coredns --timeout=180s >/dev/null
done_step

step "MinIO and Prometheus"
k create namespace trainforge-system --dry-run=client -o yaml | k apply -f - >/dev/null
if [ ! -f "$E2E_DIR/minio.env" ]; then
  umask 077
  printf 'AWS_ACCESS_KEY_ID=trainforge\nAWS_SECRET_ACCESS_KEY=%s\n' "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" > "$E2E_DIR/minio.env"
fi
for ns in trainforge-system default; do
  name=minio-creds; [ "$ns" = trainforge-system ] && name=minio-root
  k -n "$ns" create secret generic "$name" --from-env-file="$E2E_DIR/minio.env" --dry-run=client -o yaml | k apply -f - >/dev/null
done
"$KIND" load docker-image --name "$CLUSTER" --nodes "$CLUSTER-control-plane" trainforge/minio:local trainforge/prometheus:local >&2
applied=$(k apply -f "$HACK_DIR/kind/addons.yaml")
# Prometheus does not watch its config file: restart it when the ConfigMap changed.
grep -q "configmap/prometheus configured" <<<"$applied" && k -n trainforge-system rollout restart deploy/prometheus >/dev/null
k -n trainforge-system rollout status deploy/minio --timeout=180s >/dev/null
k -n trainforge-system rollout status deploy/prometheus --timeout=180s >/dev/null
CP_IP=$(k get node "$CLUSTER-control-plane" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
PY="$REPO_ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
set -a; source "$E2E_DIR/minio.env"; set +a
"$PY" - "$CP_IP" <<'PY'
import sys

import botocore.exceptions
import botocore.session

s3 = botocore.session.get_session().create_client(
    "s3", endpoint_url=f"http://{sys.argv[1]}:30900", region_name="us-east-1"
)
for _ in range(30):  # the NodePort may lag the rollout by a moment
    try:
        s3.create_bucket(Bucket="trainforge")
        break
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            break
        raise
    except botocore.exceptions.EndpointConnectionError:
        import time

        time.sleep(1)
else:
    sys.exit("MinIO NodePort not reachable")
PY
done_step

if [ "$INSTALL_OPERATOR" = 1 ]; then
  step "push the worker image to the local registry, load the operator image, helm install"
  if ! docker image inspect trainforge/registry:local >/dev/null 2>&1; then
    mkdir -p "$ctx/registry"; cp "$("$HACK_DIR/build-registry.sh")" "$ctx/registry/registry"
    printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: /var/lib/registry}, delete: {enabled: true}}\nhttp: {addr: ":5000"}\n' > "$ctx/registry/config.yml"
    printf 'FROM trainforge/kind-mini-base:bookworm\nCOPY registry /usr/local/bin/registry\nCOPY config.yml /etc/distribution/config.yml\nENTRYPOINT ["/usr/local/bin/registry", "serve", "/etc/distribution/config.yml"]\n' > "$ctx/registry/Dockerfile"
    docker build -q -t trainforge/registry:local "$ctx/registry" >/dev/null
  fi
  if ! docker inspect trainforge-registry >/dev/null 2>&1; then
    docker run -d --name trainforge-registry --restart=always -p 127.0.0.1:5000:5000 \
      -v trainforge-registry:/var/lib/registry trainforge/registry:local >/dev/null
  fi
  docker start trainforge-registry >/dev/null
  docker network connect kind trainforge-registry 2>/dev/null || true
  for _ in $(seq 1 50); do curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.2; done
  docker tag trainforge/worker:0.1.0 localhost:5000/trainforge/worker:0.1.0
  docker push -q localhost:5000/trainforge/worker:0.1.0 >&2   # layers already there: seconds
  # Drop the blobs of earlier pushes (each worker rebuild is a new ~3 GB compressed layer).
  docker exec trainforge-registry registry garbage-collect --delete-untagged \
    /etc/distribution/config.yml >/dev/null 2>&1 || true
  "$KIND" load docker-image --name "$CLUSTER" --nodes "$CLUSTER-control-plane" trainforge/operator:0.1.0 >&2
  # The tag stays 0.1.0, so the image ID in a pod annotation is what rolls the operator when
  # its code changed (and only then).
  operator_id=$(docker image inspect -f '{{.Id}}' trainforge/operator:0.1.0 | cut -c8-19)
  "$HELM" upgrade --install trainforge "$REPO_ROOT/charts/trainforge" -n trainforge-system \
    -f "$HACK_DIR/kind/values-e2e.yaml" --set-string "podAnnotations.trainforge\.io/image-id=$operator_id" \
    --skip-crds --wait --timeout 5m >&2  # CRD is templated
  done_step
fi
cat > "$E2E_DIR/endpoints.env" <<ENV
KUBECONFIG=$KUBECONFIG
MINIO_ENDPOINT=http://$CP_IP:30900
PROMETHEUS_URL=http://$CP_IP:30090
ENV
log "cluster $CLUSTER ready: MinIO http://$CP_IP:30900, Prometheus http://$CP_IP:30090"
echo "export KUBECONFIG=$KUBECONFIG"
