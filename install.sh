#!/usr/bin/env bash
# Create .venv and install the pinned dependencies plus this project (editable).
#
#   ./install.sh            CPU (default without an NVIDIA GPU): the pinned lock, --no-deps,
#                           offline-safe; never pulls torchvision or a CUDA torch.
#   ./install.sh --cuda     GPU (default when `nvidia-smi -L` lists a GPU): torch from PyPI
#                           *with* its dependencies (the CUDA build and its NVIDIA libraries),
#                           within the supported range, then the rest of the lock --no-deps.
#   ./install.sh --system-torch
#                           reuse a torch already installed in the system Python (a GPU image
#                           with its own CUDA torch): the venv sees system site-packages and
#                           nothing installs torch.
#   ./install.sh --cpu      force the CPU path on a GPU machine.
#
# Supported torch: TORCH_RANGE below (the code avoids newer-only APIs); the lock pins 2.13.0.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_RANGE=">=2.5,<2.14"

mode=auto
for arg in "$@"; do
  case "$arg" in
    --cpu) mode=cpu ;;
    --cuda) mode=cuda ;;
    --system-torch) mode=system ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (expected --cpu, --cuda or --system-torch)" >&2; exit 2 ;;
  esac
done
if [ "$mode" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    mode=cuda
  else
    mode=cpu
  fi
fi

if [ ! -x .venv/bin/python ]; then
  if [ "$mode" = system ]; then
    "$PYTHON" -m venv --system-site-packages .venv
  else
    "$PYTHON" -m venv .venv
  fi
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

if [ "$mode" = cpu ]; then
  "${PIP[@]}" --no-deps -r requirements.lock
else
  if [ "$mode" = cuda ]; then
    # with dependencies: the CUDA wheel needs its nvidia-* packages (--no-deps would leave a
    # torch that cannot load libcudart)
    "${PIP[@]}" "torch${TORCH_RANGE}"
  fi
  grep -v '^torch==' requirements.lock > .venv/requirements-no-torch.lock
  "${PIP[@]}" --no-deps -r .venv/requirements-no-torch.lock
fi
"${PIP[@]}" --no-deps --no-build-isolation -e .

MODE="$mode" .venv/bin/python - <<'PY'
import importlib.util, os, sys
import torch
mode = os.environ["MODE"]
major, minor = (int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
problems = []
if mode == "cpu" and not torch.__version__.startswith("2.13."):
    problems.append(f"expected the pinned torch 2.13.x, found {torch.__version__}")
if not (2, 5) <= (major, minor) < (2, 14):
    problems.append(f"torch {torch.__version__} is outside the supported range >=2.5,<2.14")
if importlib.util.find_spec("torchvision") is not None and mode == "cpu":
    problems.append("torchvision is installed; it does not import beside the pinned CPU torch")
if problems:
    sys.exit("install.sh: " + "; ".join(problems))
device = "cuda available" if torch.cuda.is_available() else "no CUDA device"
if mode in ("cuda", "system") and not torch.cuda.is_available():
    print(f"install.sh: warning: {mode} install but torch.cuda.is_available() is False",
          file=sys.stderr)
print(f"install.sh: ok ({mode}; torch {torch.__version__}, {device}, "
      f"python {sys.version.split()[0]})")
PY
