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
[ -x .venv/bin/python ] || { log "creating .venv"; uv venv --quiet --seed --python "$(command -v python3)" .venv; }
log "installing trainforge[operator,runtime,dev] into .venv (first run downloads torch and CUDA libs, ~3 GB)"
start=$(date +%s)
# --compile-bytecode: this machine sets PYTHONDONTWRITEBYTECODE, so without it every process
# compiles what it imports from source: `import torch` takes 6.8 s instead of 3.3 s (every worker
# of the runtime tier pays it), and the operator's RSS carries the compile of kubernetes'
# 4.5 MB core_v1_api.py (+65 MB). The operator image precompiles the same way (Dockerfile).
VIRTUAL_ENV="$REPO_ROOT/.venv" uv pip install --quiet --compile-bytecode -e ".[operator,runtime,dev]"
log "venv ready in $(( $(date +%s) - start ))s: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
