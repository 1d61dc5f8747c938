#!/usr/bin/env bash
# Create (or reuse) the offline kind cluster for e2e tests and the demo, in three steps with one
# concern each (each can be run alone, in this order):
#   hack/e2e-cluster.sh   the kind cluster: nodes, pod network, fake GPU pool
#   hack/e2e-addons.sh    MinIO and Prometheus in trainforge-system
#   hack/e2e-install.sh   the operator and worker images, the local registry, helm install
# Prints `export KUBECONFIG=...` on stdout at the end. Usage: hack/e2e-up.sh [--no-operator]
source "$(dirname "$0")/e2e-lib.sh"
INSTALL_OPERATOR=1; [ "${1:-}" = "--no-operator" ] && INSTALL_OPERATOR=0

"$HACK_DIR/e2e-cluster.sh" >/dev/null
"$HACK_DIR/e2e-addons.sh" >/dev/null
[ "$INSTALL_OPERATOR" = 0 ] || "$HACK_DIR/e2e-install.sh" >/dev/null
set -a; source "$E2E_DIR/endpoints.env"; set +a
log "cluster $CLUSTER ready: MinIO $MINIO_ENDPOINT, Prometheus $PROMETHEUS_URL"
print_kubeconfig
