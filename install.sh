#!/usr/bin/env bash
# Create .venv and install the pinned dependencies plus this project (editable).
# Works with network access limited to package registries; never pulls torchvision or CUDA torch.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
.venv/bin/python - <<'PY'
import importlib.util, sys
import torch
problems = []
if not torch.__version__.startswith("2.13."):
    problems.append(f"expected torch 2.13.x, found {torch.__version__}")
if importlib.util.find_spec("torchvision") is not None:
    problems.append("torchvision is installed; it does not import beside the pinned CPU torch")
if problems:
    sys.exit("install.sh: " + "; ".join(problems))
print(f"install.sh: ok (torch {torch.__version__}, python {sys.version.split()[0]})")
PY
