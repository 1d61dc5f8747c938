#!/usr/bin/env bash
# The operator on the e2e cluster (hack/e2e-cluster.sh and hack/e2e-addons.sh come first): builds
# the operator and worker images from the working tree (hack/build-images.sh), pushes the worker
# image and the torch-only image built on it to the local registry container `trainforge-registry`
# (the nodes' docker.io mirror, see hack/kind/cluster.yaml), loads the operator image into the
# control-plane node, and installs the chart with helm (hack/kind/values-e2e.yaml). Prints
# `export KUBECONFIG=...` on stdout.
# Usage: hack/e2e-install.sh
source "$(dirname "$0")/e2e-lib.sh"
REGISTRY_IMAGE=trainforge/registry:local

# start_registry: the registry container, built and created once, started and on the kind network.
start_registry() {
  local registry
  if ! docker image inspect "$REGISTRY_IMAGE" >/dev/null 2>&1; then
    registry=$("$HACK_DIR/build-registry.sh")
    file_image "$REGISTRY_IMAGE" registry.Dockerfile --build-arg MINI_BASE="$MINI_BASE_IMAGE" \
      "$registry" "$HACK_DIR/images/registry-config.yml"
  fi
  if ! docker inspect "$REGISTRY" >/dev/null 2>&1; then
    docker run -d --name "$REGISTRY" --restart=always -p 127.0.0.1:5000:5000 \
      -v "$REGISTRY:/var/lib/registry" "$REGISTRY_IMAGE" >/dev/null
  fi
  docker start "$REGISTRY" >/dev/null
  docker network connect kind "$REGISTRY" 2>/dev/null || true
  for _ in $(seq 1 50); do curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.2; done
}

push_worker() {
  local image
  for image in "$WORKER_IMAGE" "$PLAIN_IMAGE"; do
    docker tag "$image" "localhost:5000/$image"
    docker push -q "localhost:5000/$image" >&2   # layers already there: seconds
  done
  # Drop the blobs of earlier pushes (each worker rebuild is a new ~3 GB compressed layer).
  docker exec "$REGISTRY" registry garbage-collect --delete-untagged \
    /etc/distribution/config.yml >/dev/null 2>&1 || true
}

helm_install() {
  local operator_id
  # The tag stays the same, so the image ID in a pod annotation is what rolls the operator when
  # its code changed (and only then).
  operator_id=$(docker image inspect -f '{{.Id}}' "$OPERATOR_IMAGE" | cut -c8-19)
  "$HELM" upgrade --install trainforge "$REPO_ROOT/charts/trainforge" -n trainforge-system \
    -f "$HACK_DIR/kind/values-e2e.yaml" --set-string "podAnnotations.trainforge\.io/image-id=$operator_id" \
    --skip-crds --wait --timeout 5m >&2  # CRD is templated
}

step "operator and worker images"
[ -x "$HELM" ] || "$HACK_DIR/build-helm.sh" >/dev/null
"$HACK_DIR/build-images.sh" operator   # cheap: always rebuilt from the working tree
# Always rebuilt so the cluster runs the current runtime code: the ~3 GB dependency layer is
# cached (training_image/Dockerfile installs wheels before copying the code), so a code change
# costs seconds here and a small layer push below.
"$HACK_DIR/build-images.sh" worker
"$HACK_DIR/build-images.sh" plain   # FROM the worker: a few MB on top of its layers
done_step

step "push the worker image to the local registry, load the operator image, helm install"
cluster_exists || die "no kind cluster $CLUSTER: run hack/e2e-cluster.sh first"
start_registry
push_worker
"$KIND" load docker-image --name "$CLUSTER" --nodes "$CLUSTER-control-plane" "$OPERATOR_IMAGE" >&2
helm_install
done_step
print_kubeconfig
