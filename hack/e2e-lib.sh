#!/usr/bin/env bash
# shellcheck disable=SC2034  # variables here are for the scripts that source this file
# Shared by the e2e cluster scripts (e2e-cluster.sh, e2e-addons.sh, e2e-install.sh, e2e-up.sh) and
# demo.sh: the cluster's name, its state directory, the tools that drive it, and step timing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CLUSTER="${TRAINFORGE_CLUSTER:-trainforge-e2e}"
E2E_DIR="$CACHE_DIR/e2e/$CLUSTER"   # kubeconfig, minio.env (mode 600), endpoints.env
export KUBECONFIG="$E2E_DIR/kubeconfig"
KIND="$(tool_dir kind-tools "$KIND_VERSION")/bin/kind"
KUBECTL="$(tool_dir k8s "$K8S_VERSION")/bin/kubectl"
HELM="$(tool_dir helm "$HELM_VERSION")/bin/helm"
REGISTRY=trainforge-registry   # the local registry container, on the kind network and 127.0.0.1:5000
PY="$REPO_ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
mkdir -p "$E2E_DIR"

k() { "$KUBECTL" "$@"; }
step() { STEP_START=$(date +%s); log "$*"; }
done_step() { log "  done in $(( $(date +%s) - STEP_START ))s"; }
# Not `kind get clusters | grep -q`: grep's early exit can SIGPIPE kind, a failure under pipefail.
cluster_exists() { grep -qx "$CLUSTER" <<<"$("$KIND" get clusters 2>/dev/null)"; }
# The control-plane node's IP: the NodePorts of MinIO and Prometheus answer there.
control_plane_ip() {
  k get node "$CLUSTER-control-plane" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'
}
# print_kubeconfig: the last line on stdout of every e2e script, for `eval "$(hack/e2e-up.sh)"`.
print_kubeconfig() { echo "export KUBECONFIG=$KUBECONFIG"; }
