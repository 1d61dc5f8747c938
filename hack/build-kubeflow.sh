#!/usr/bin/env bash
# Build the Kubeflow Training Operator (v1, PyTorchJob), the contender of `make bench-compare`,
# from the Go module proxy, and copy its PyTorchJob CRD out of the same module into the cache.
# Output: $CACHE_DIR/training-operator-$KUBEFLOW_TRAINING_OPERATOR_VERSION/
#   bin/training-operator            the controller (cmd/training-operator.v1)
#   crds/kubeflow.org_pytorchjobs.yaml  from the module's manifests/base/crds
# Prints the binary's path on stdout. None of Kubeflow's code enters this repository.
# The version is pinned explicitly (hack/versions.env): the proxy's version list is stale here.
source "$(dirname "$0")/lib.sh"

MODULE=github.com/kubeflow/training-operator

# build_training_operator BIN_DIR MODULE VERSION: `go install` the cmd package (its binary is
# named training-operator.v1; renamed), then the CRD from the module zip next to bin/.
build_training_operator() {
  local bin=$1 module=$2 version=$3 src
  GOBIN="$bin" nice -n 10 go install -ldflags "-s -w" "$module/cmd/training-operator.v1@$version" \
    || die "go install $module/cmd/training-operator.v1@$version failed: check the Go module proxy"
  mv "$bin/training-operator.v1" "$bin/training-operator"
  src=$(go_mod_dir "$module@$version")
  mkdir -p "$bin/../crds"
  cp "$src/manifests/base/crds/kubeflow.org_pytorchjobs.yaml" "$bin/../crds/"
  chmod u+w "$bin/../crds/"*
  smoke_test "$bin/training-operator" --help
}

go_tool --build build_training_operator training-operator \
  "$MODULE@$KUBEFLOW_TRAINING_OPERATOR_VERSION"
