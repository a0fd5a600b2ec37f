#!/usr/bin/env bash
# Installs sharedsg on one cluster node from the project copy (never a copied .venv): a virtual
# environment in ~/sharedsg-venv, the torch build for this node's hardware (CUDA when nvidia-smi
# lists a GPU, else the CPU build), then the package itself (not editable) and pyarrow (for an
# experiment.storage URI such as s3://... or gs://...). The cluster launcher configs run it as
# their setup command; the Ray start commands put ~/sharedsg-venv/bin first on PATH, so
# `ray job submit -- sharedsg run ...` finds the command on every node.
#   bash clusters/setup_node.sh [PROJECT_DIR]          # default ~/sharedsg
# Override the torch build with TORCH_SPEC (e.g. 'torch==2.13.0') and TORCH_CUDA_INDEX.
set -euo pipefail
SRC=${1:-$HOME/sharedsg}
VENV=${SHAREDSG_VENV:-$HOME/sharedsg-venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_CUDA_INDEX=${TORCH_CUDA_INDEX:-https://download.pytorch.org/whl/cu128}
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q "$TORCH_SPEC" --index-url "$TORCH_CUDA_INDEX"
    want_cuda=1
else
    "$VENV/bin/pip" install -q "$TORCH_SPEC" --index-url "$TORCH_CPU_INDEX"
    want_cuda=0
fi
"$VENV/bin/pip" install -q "$SRC" pyarrow
# a GPU node whose torch cannot use the GPU would hold a GPU and compute on the CPU: stop here
"$VENV/bin/python" -c "import sys, torch, sharedsg; ok = torch.cuda.is_available() or not $want_cuda; \
print('sharedsg', sharedsg.__file__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available()); sys.exit(0 if ok else 1)"
