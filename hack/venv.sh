#!/usr/bin/env bash
# Create .venv with every extra (operator, runtime, dev). torch from PyPI is the CUDA build; it runs on CPU.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[ -x .venv/bin/python ] || { log "creating .venv"; python3 -m venv .venv; }
log "installing trainforge[operator,runtime,dev] into .venv (first run downloads torch, ~3 GB)"
.venv/bin/pip install --progress-bar off -q -e ".[operator,runtime,dev]"
log "venv ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
