#!/usr/bin/env bash
# Create .venv with every extra (operator, runtime, dev). torch from PyPI is the CUDA build; it runs on CPU.
# uv (from PyPI) resolves and installs far faster than pip and keeps a wheel cache in ~/.cache/uv,
# so a fresh clone (CI) reinstalls torch in seconds instead of re-downloading ~3 GB.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
# make puts .venv/bin first on PATH; this script needs the system python3 (a --user install from
# inside the venv fails), and uv where a --user install puts it.
PATH="$HOME/.local/bin:$(tr ':' '\n' <<<"$PATH" | grep -vxF "$REPO_ROOT/.venv/bin" | paste -sd: -)"
export PATH
if ! command -v uv >/dev/null 2>&1; then
  log "installing uv from PyPI (user site)"
  python3 -m pip install --quiet --user uv
fi
EXTRAS=(--extra operator --extra runtime --extra dev)
# --compile-bytecode: this machine sets PYTHONDONTWRITEBYTECODE, so without it every process
# compiles what it imports from source: `import torch` takes 6.8 s instead of 3.3 s (every worker
# of the runtime tier pays it), and the operator's RSS carries the compile of kubernetes'
# 4.5 MB core_v1_api.py (+65 MB). The operator image precompiles the same way (Dockerfile).
# That compile is most of a fresh install's time (~2.5 min of ~3 on 2 cores), and uv's cache
# keeps wheels, not bytecode. So a fresh clone (CI) without .venv copies a prepared one instead:
# $CACHE_DIR/venvs/KEY holds every dependency, compiled, in a relocatable venv (scripts find their
# python relative to themselves); `cp -al` hard-links it into .venv in seconds and only the
# project itself is installed on top (editable, no dependencies). KEY hashes the Python version,
# the dependency lists of pyproject.toml and the ISO week, so the template follows pyproject.toml
# at once and new releases of the unpinned dependencies within a week. Installers replace files
# (never write into them), so the hard links stay safe. TRAINFORGE_VENV_TEMPLATE=0 skips this.

# template_key: what the template's contents depend on.
template_key() {
  { python3 --version; date -u +%G-W%V
    python3 -c 'import json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(json.dumps([p.get("requires-python"), p["dependencies"], p["optional-dependencies"]], sort_keys=True))'
  } | sha256sum | cut -c1-12
}

# build_template DIR: a relocatable venv with every dependency and none of the project.
build_template() {
  local dir=$1 tmp="$1.tmp" start; start=$(date +%s)
  log "preparing the venv template $dir (first run downloads torch and CUDA libs, ~3 GB)"
  rm -rf "$tmp"
  uv venv --quiet --seed --relocatable --python "$(command -v python3)" "$tmp"
  VIRTUAL_ENV="$tmp" uv pip install --quiet --compile-bytecode -r pyproject.toml "${EXTRAS[@]}"
  mv "$tmp" "$dir"; stamp_write "$dir"
  log "venv template ready in $(( $(date +%s) - start ))s"
  # Keep the three newest templates (other branches may use another key); drop older ones.
  find "$(dirname "$dir")" -mindepth 1 -maxdepth 1 -type d -not -name '*.tmp' -printf '%T@ %p\n' \
    | sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
}

start=$(date +%s)
if [ ! -x .venv/bin/python ] && [ "${TRAINFORGE_VENV_TEMPLATE:-1}" != 0 ]; then
  template="$CACHE_DIR/venvs/$(template_key)"
  build_lock "$template"   # two fresh clones at once: one builds, the other waits
  stamp_ok "$template" || build_template "$template"
  log "creating .venv from the template $template (hard links)"
  rm -rf .venv; cp -al "$template" .venv; rm -f .venv/.done
  VIRTUAL_ENV="$REPO_ROOT/.venv" uv pip install --quiet --no-deps -e .
else
  [ -x .venv/bin/python ] || { log "creating .venv"; uv venv --quiet --seed --python "$(command -v python3)" .venv; }
  log "installing trainforge[operator,runtime,dev] into .venv (first run downloads torch and CUDA libs, ~3 GB)"
  VIRTUAL_ENV="$REPO_ROOT/.venv" uv pip install --quiet --compile-bytecode -e ".[operator,runtime,dev]"
fi
log "venv ready in $(( $(date +%s) - start ))s: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
