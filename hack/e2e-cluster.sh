#!/usr/bin/env bash
# The offline kind cluster of the e2e tier and the demo, created or reused: 1 control plane + 2
# workers from the node image (hack/build-node-image.sh), static pod networking (hack/kind/cni.sh),
# and a fake GPU pool: label trainforge.io/pool=gpu, taint nvidia.com/gpu=present:NoSchedule,
# nvidia.com/gpu capacity patched on the node status.
# A cluster that stopped with dockerd gets its nodes started again; one whose API server does not
# answer within two minutes is deleted and created afresh.
# Prints `export KUBECONFIG=...` on stdout. Usage: hack/e2e-cluster.sh
source "$(dirname "$0")/e2e-lib.sh"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"

api_ready() { k get --raw /readyz --request-timeout=5s >/dev/null 2>&1; }

# restart_cluster: start the stopped nodes of an existing cluster and wait for its API server.
restart_cluster() {
  local nodes; nodes=$(docker ps -a -q --filter "label=io.x-k8s.kind.cluster=$CLUSTER")
  # shellcheck disable=SC2086 # one container id per word
  [ -z "$nodes" ] || docker start $nodes >/dev/null
  "$KIND" export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || return 1
  for _ in $(seq 1 24); do api_ready && return 0; sleep 5; done
  return 1
}

create_cluster() {
  step "kind create cluster $CLUSTER (1 control plane + 2 workers)"
  "$KIND" create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config "$HACK_DIR/kind/cluster.yaml" \
    --kubeconfig "$KUBECONFIG" --retain=false >&2 \
    || die "kind create failed; retry with: $KIND create cluster --name $CLUSTER --image $NODE_IMAGE --config hack/kind/cluster.yaml --retain, then $KIND export logs --name $CLUSTER"
  done_step
}

# gpu_pool: what a GPU node pool looks like to the scheduler, without GPUs.
gpu_pool() {
  local node
  k taint nodes -l node-role.kubernetes.io/control-plane node-role.kubernetes.io/control-plane:NoSchedule- >/dev/null 2>&1 || true
  for node in $(k get nodes -l trainforge.io/pool=gpu -o jsonpath='{.items[*].metadata.name}'); do
    k taint nodes "$node" nvidia.com/gpu=present:NoSchedule --overwrite >/dev/null
    # Extended resources without a device plugin survive until the kubelet restarts.
    k patch node "$node" --subresource=status --type=json \
      -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$GPUS_PER_NODE\"}]" >/dev/null
  done
}

step "prerequisites: docker, node image"
"$HACK_DIR/docker.sh"
"$HACK_DIR/build-node-image.sh"
for tool in k8s kind-tools; do "$HACK_DIR/build-$tool.sh" >/dev/null; done   # kubectl, kind (cached)
done_step

if cluster_exists; then
  log "reusing kind cluster $CLUSTER"
  if ! restart_cluster; then
    log "kind cluster $CLUSTER does not answer: deleting it to start afresh"
    "$KIND" delete cluster --name "$CLUSTER" >&2
  fi
fi
if ! cluster_exists; then create_cluster; fi

step "pod network, node readiness, GPU pool"
"$HACK_DIR/kind/cni.sh" "$CLUSTER" "$KUBECONFIG"
k wait --for=condition=Ready nodes --all --timeout=180s >/dev/null
gpu_pool
k -n kube-system rollout status deploy/coredns --timeout=180s >/dev/null
done_step
print_kubeconfig
