#!/usr/bin/env bash
# Build $OPERATOR_IMAGE (Dockerfile) and $WORKER_IMAGE (training_image/Dockerfile), by default
# trainforge/{operator,worker}:$TRAINFORGE_VERSION, on the base image from build-base-image.sh.
# The worker's wheels (torch is ~3 GB with its CUDA libraries) are downloaded once on the host into
# $CACHE_DIR/wheels/worker and served to `docker build` over HTTP on the docker bridge, so a code
# change never re-downloads them and they never end up in an image layer or the build context.
# `plain` builds $PLAIN_IMAGE (Python and torch without trainforge, FROM $WORKER_IMAGE) for the
# standalone launcher's e2e test.
# Usage: hack/build-images.sh [operator] [worker] [plain]   (default: operator and worker)
source "$(dirname "$0")/lib.sh"
WHEELS="$CACHE_DIR/wheels/worker"
PY="${PY:-$REPO_ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(operator worker)
build_lock "$CACHE_DIR/images/trainforge-images"  # hack/build-tools.sh --images may be at it too

"$HACK_DIR/docker.sh"
BASE_IMAGE=$("$HACK_DIR/build-base-image.sh")
cd "$REPO_ROOT" || exit 1

# Every image is labelled with a hash of its inputs (the files its Dockerfile copies, the image it
# is built FROM, its requirements); when the image present already carries the hash of the current
# inputs, its build and smoke test are skipped. A warm docker build still costs tens of seconds on
# two cores (context upload, every cached step, `docker run` of the image), and make test asks for
# these images twice (the background prefetch, then the kind tier). FORCE=1 rebuilds.
INPUTS_LABEL=trainforge.io/inputs

# inputs_key STRING... -- PATH...: hash of the strings and of every file under the paths (tracked or
# untracked, not ignored; as .dockerignore, .gitignore leaves out caches). Empty outside a git
# checkout: then the images are always built.
inputs_key() {
  local strings=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do strings+=("$1"); shift; done
  shift
  git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1 || return 0
  {
    printf '%s\n' "${strings[@]}"
    git -C "$REPO_ROOT" ls-files -z -co --exclude-standard -- "$@" | sort -z \
      | (cd "$REPO_ROOT" && xargs -0 -r sha256sum)
  } | sha256sum | cut -c1-16
}

# up_to_date IMAGE KEY: IMAGE exists and was built from inputs with hash KEY.
up_to_date() {
  [ -n "$2" ] && [ "${FORCE:-0}" != 1 ] \
    && [ "$(docker image inspect -f "{{ index .Config.Labels \"$INPUTS_LABEL\" }}" "$1" 2>/dev/null)" = "$2" ]
}

image_id() { docker image inspect -f '{{.Id}}' "$1"; }

build_operator() {
  local key; key=$(inputs_key "base=$(image_id "$BASE_IMAGE")" -- Dockerfile .dockerignore pyproject.toml README.md api operator)
  if up_to_date "$OPERATOR_IMAGE" "$key"; then log "$OPERATOR_IMAGE up to date (inputs $key)"; return; fi
  log "docker build $OPERATOR_IMAGE (FROM $BASE_IMAGE)"
  local start; start=$(date +%s)
  docker build -q -t "$OPERATOR_IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" --label "$INPUTS_LABEL=$key" -f Dockerfile . >/dev/null
  docker run --rm --read-only --user 65532 --entrypoint python "$OPERATOR_IMAGE" \
    -c "import getpass, trainforge_operator, kopf; print('operator image ok, user', getpass.getuser())" >&2
  log "$OPERATOR_IMAGE built in $(( $(date +%s) - start ))s ($(image_size "$OPERATOR_IMAGE"))"
}

image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

# The runtime requirements, from pyproject.toml (base dependencies + the `runtime` extra).
runtime_requirements() {
  "$PY" - <<'PY'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["runtime"]))
PY
}

download_wheels() {
  local reqs; reqs=$(runtime_requirements)
  local key; key=$(sha256sum <<<"$reqs" | cut -c1-12)
  if [ -f "$WHEELS/.done-$key" ]; then log "worker wheels cached in $WHEELS"; return; fi
  log "pip download of the worker's wheels into $WHEELS (cold: ~3 GB, torch with CUDA libraries)"
  mkdir -p "$WHEELS"
  # The host is the image's platform too (Debian bookworm, CPython 3.11, x86_64).
  "$PY" -m pip download -q -d "$WHEELS" -r <(echo "$reqs") \
    || die "pip download failed; check PyPI access (pip config list) and retry"
  rm -f "$WHEELS"/.done-*; touch "$WHEELS/.done-$key"
}

# Serve $WHEELS on the docker bridge gateway for the duration of the build.
serve_wheels() {
  # docker0's address is the default bridge's gateway (`docker network inspect` omits it on 20.10).
  local gw; gw=$(ip -4 -o addr show docker0 | awk '{split($4, a, "/"); print a[1]; exit}')
  [ -n "$gw" ] || die "no IPv4 address on docker0; is dockerd running with its default bridge?"
  # A fixed port keeps PIP_ARGS, and so the ~3 GB dependency layer's cache key, stable across builds.
  local port="${TRAINFORGE_WHEEL_PORT:-38471}"
  detached "$PY" -m http.server "$port" --bind "$gw" --directory "$WHEELS" >/dev/null 2>&1
  WHEEL_SERVER_PID=$!
  trap 'kill $WHEEL_SERVER_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://$gw:$port/" && break; sleep 0.1; done
  WHEEL_URL="http://$gw:$port/"
}

build_worker() {
  local key; key=$(inputs_key "base=$(image_id "$BASE_IMAGE")" "$(runtime_requirements)" -- \
    training_image/Dockerfile .dockerignore api/trainforge_api training_image/trainforge_runtime \
    training_image/trainforge_sdk training_image/trainforge_launcher)
  if up_to_date "$WORKER_IMAGE" "$key"; then log "$WORKER_IMAGE up to date (inputs $key)"; return; fi
  download_wheels
  serve_wheels
  log "docker build $WORKER_IMAGE (FROM $BASE_IMAGE, wheels from $WHEEL_URL)"
  local start; start=$(date +%s)
  local host; host=$(sed -E 's#http://([^:/]+).*#\1#' <<<"$WHEEL_URL")
  local old_id; old_id=$(docker image inspect -f '{{.Id}}' "$WORKER_IMAGE" 2>/dev/null || true)
  docker build -t "$WORKER_IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg PIP_ARGS="--no-index --find-links $WHEEL_URL --trusted-host $host" \
    --label "$INPUTS_LABEL=$key" -f training_image/Dockerfile . >&2
  kill "$WHEEL_SERVER_PID" 2>/dev/null || true
  docker run --rm --entrypoint python "$WORKER_IMAGE" \
    -c "import torch, trainforge_runtime.launch; print('worker image ok, torch', torch.__version__)" >&2
  log "$WORKER_IMAGE built in $(( $(date +%s) - start ))s ($(image_size "$WORKER_IMAGE"))"
  # A replaced 6 GB image would linger as a dangling image: remove it (ignored if still in use).
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{.Id}}' "$WORKER_IMAGE")" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
}

# build_plain: a torch-only image from the worker's layers; proves trainforge is not importable.
build_plain() {
  local key; key=$(inputs_key "worker=$(image_id "$WORKER_IMAGE")" -- hack/images/torch-plain.Dockerfile)
  if up_to_date "$PLAIN_IMAGE" "$key"; then log "$PLAIN_IMAGE up to date (inputs $key)"; return; fi
  log "docker build $PLAIN_IMAGE (FROM $WORKER_IMAGE, trainforge removed)"
  local start; start=$(date +%s)
  local old_id; old_id=$(docker image inspect -f '{{.Id}}' "$PLAIN_IMAGE" 2>/dev/null || true)
  docker build -q -t "$PLAIN_IMAGE" --build-arg WORKER_IMAGE="$WORKER_IMAGE" --label "$INPUTS_LABEL=$key" \
    -f "$HACK_DIR/images/torch-plain.Dockerfile" "$HACK_DIR/images" >/dev/null
  if docker run --rm "$PLAIN_IMAGE" -c "import trainforge_runtime" >/dev/null 2>&1; then
    die "$PLAIN_IMAGE can import trainforge_runtime; it must not"
  fi
  docker run --rm "$PLAIN_IMAGE" -c "import torch; print('plain image ok, torch', torch.__version__, \
'without trainforge')" >&2
  log "$PLAIN_IMAGE built in $(( $(date +%s) - start ))s"
  # The replaced one pins the previous worker image's layers: let both go.
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{.Id}}' "$PLAIN_IMAGE")" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
}

for t in "${targets[@]}"; do
  case "$t" in
    operator) build_operator ;;
    worker) build_worker ;;
    plain) build_plain ;;
    *) die "unknown target '$t' (expected: operator, worker, plain)" ;;
  esac
done
