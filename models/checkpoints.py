"""Saving and loading model weights safely.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint is data, and a pickle that
tries to construct arbitrary objects is refused rather than executed. ``.safetensors`` files
are read with the safetensors package when it is installed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.utils import atomic_path, file_sha256


def save_checkpoint(model: nn.Module, path: str | Path) -> str:
    """Atomically save ``model``'s state dict; return the file's SHA-256."""
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return file_sha256(path)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise BenchmarkError(
                f"{path}: reading .safetensors needs `pip install safetensors`"
            ) from None
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise BenchmarkError(
            f"{path}: refused to load: not a weights-only checkpoint ({first_line})"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchmarkError(f"{path}: cannot read checkpoint ({first_line})") from None
    for wrapper_key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper_key), dict):
            state = state[wrapper_key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BenchmarkError(f"{path}: expected a state dict of tensors")
    return state


def load_checkpoint(model: nn.Module, path: str | Path, expected_sha256: str | None = None) -> None:
    """Load weights into ``model`` (a :class:`NormalizedModel`) from ``path``.

    Accepts state dicts of the whole normalized model or of its backbone only (e.g. weights
    trained elsewhere without our normalization wrapper), optionally nested under
    ``state_dict``/``model`` keys. ``expected_sha256`` guards against tampered cache files.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: checkpoint file not found")
    if expected_sha256 is not None and (actual := file_sha256(path)) != expected_sha256:
        raise BenchmarkError(
            f"{path}: checkpoint hash mismatch (SHA-256 {actual[:12]}..., expected "
            f"{expected_sha256[:12]}...): file was modified or truncated"
        )
    state = _read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    target: nn.Module = model
    if not any(k.startswith("backbone.") for k in state) and hasattr(model, "backbone"):
        target = model.backbone
    try:
        result = target.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shape mismatches
        detail = " ".join(str(exc).split())[:300]
        raise BenchmarkError(f"{path}: weights do not match the model ({detail})") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {result.missing_keys[:3]}")
    if result.unexpected_keys:
        problems.append(f"unexpected {result.unexpected_keys[:3]}")
    if problems:
        raise BenchmarkError(
            f"{path}: weights do not match the model ({'; '.join(problems)}); "
            "check the model key and its params"
        )
