#!/usr/bin/env bash
# make lint-chart: everything that checks charts/trainforge offline.
#   1. helm lint (defaults and each ci/*-values.yaml scenario)
#   2. helm template of each scenario, with and without the Prometheus operator API
#      (monitoring.coreos.com/v1), and strict schema validation of every rendered object against
#      the Kubernetes OpenAPI v3 spec from the k8s.io/kubernetes Go module
#      (hack/validate_manifests.py) and the Prometheus operator's CRDs from its Go module
#   3. promtool check rules + promtool test rules for the alerting rules
#   4. the chart unit tests (pytest tests/chart)
# Rendered manifests are kept in $OUT_DIR (default: $CACHE_DIR/lint-chart) for inspection.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

CHART=charts/trainforge
PY="${PY:-$REPO_ROOT/.venv/bin/python}"
OUT_DIR="${OUT_DIR:-$CACHE_DIR/lint-chart}"
MONITORING_API=monitoring.coreos.com/v1

[ -x "$PY" ] || die "no Python at $PY: run 'make venv' (or set PY=)"
HELM="$(hack/build-helm.sh)"
export HELM

ensure_promtool() {
  command -v promtool >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's prometheus package for promtool"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q --no-install-recommends prometheus >/dev/null; } \
      || die "could not install prometheus (promtool): apt-get install prometheus"
  else
    die "promtool not found: apt-get install prometheus (Debian ships promtool with it)"
  fi
}

# The Prometheus operator's CRDs ship inside its Go module: validate monitors and rules against them.
promop_crds() {
  local dir
  dir=$(go_env; go_mod_dir "github.com/prometheus-operator/prometheus-operator@$PROMOP_VERSION") \
    || die "cannot fetch prometheus-operator@$PROMOP_VERSION from the Go module proxy"
  for kind in servicemonitors podmonitors prometheusrules; do
    echo "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml"
  done
}

# The Kubernetes OpenAPI v3 documents ship in the k8s.io/kubernetes module (cached after build-k8s).
k8s_dir=$(go_env; go_mod_dir "k8s.io/kubernetes@$K8S_VERSION") \
  || die "cannot fetch k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
export GOMODCACHE="${k8s_dir%%/k8s.io/kubernetes@*}"

mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*.yaml
crd_args=()
while read -r f; do [ -f "$f" ] || die "missing $f"; crd_args+=(--crd "$f"); done < <(promop_crds)

scenarios=(default)
for f in "$CHART"/ci/*-values.yaml; do [ -e "$f" ] && scenarios+=("$f"); done

failed=0
for sc in "${scenarios[@]}"; do
  name=$(basename "$sc" -values.yaml)
  vals=(); [ "$sc" = default ] || vals=(-f "$sc")
  log "helm lint ($name)"
  "$HELM" lint --strict "$CHART" "${vals[@]}" >"$OUT_DIR/lint-$name.log" 2>&1 \
    || { cat "$OUT_DIR/lint-$name.log"; failed=1; continue; }
  for cap in plain monitoring; do
    caps=(); [ "$cap" = monitoring ] && caps=(--api-versions "$MONITORING_API")
    out="$OUT_DIR/$name-$cap.yaml"
    "$HELM" template trainforge "$CHART" --namespace trainforge-system --include-crds \
      "${vals[@]}" "${caps[@]}" \
      >"$out" || { log "helm template failed for $name ($cap)"; failed=1; continue; }
    n=$(grep -c '^kind:' "$out" || true)
    if "$PY" hack/validate_manifests.py "${crd_args[@]}" "$out" >"$out.validation" 2>&1; then
      log "  $name/$cap: $n objects valid"
    else
      grep -v '^OK' "$out.validation"; failed=1
    fi
  done
done

ensure_promtool
log "promtool check rules + test rules"
promtool check rules "$CHART"/rules/*.yaml || failed=1
promtool test rules tests/chart/rules/*.test.yaml || failed=1

log "chart unit tests"
nice -n 10 "$PY" -m pytest tests/chart -q -p no:cacheprovider -m "not slow" || failed=1

[ "$failed" = 0 ] || die "chart checks failed (rendered manifests: $OUT_DIR)"
log "chart OK: ${#scenarios[@]} scenarios x 2 capability sets rendered and valid"
