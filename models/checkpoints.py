"""Saving and loading model weights safely, in the layouts checkpoints come in.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint is data, and a pickle that
tries to construct arbitrary objects is refused rather than executed. ``.safetensors`` files
are read with the safetensors package when it is installed. Tensors saved on a GPU are mapped
to the CPU.

Published checkpoints rarely hold a bare state dict. :func:`extract_state_dict` finds it in
the layouts seen in the wild, so none has to be converted by hand:

- nested under ``state_dict`` / ``model_state_dict`` / ``model`` / ``net`` / ``state``
  (training scripts store ``{"state_dict": ..., "epoch": ..., "best_prec1": ...}``);
- a one-element list of state dicts (alpha-beta-CROWN's ERAN/OVAL files);
- non-tensor entries beside the tensors (epochs, accuracies), which are dropped;
- ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) key prefixes, stripped.

Where guessing is ambiguous (two candidate sub-dicts, an unusual prefix) the suite names it:
``checkpoint_key`` (a dotted path into the file) and ``strip_prefix``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.utils import file_sha256, save_torch_atomic

# Keys under which training scripts nest the state dict, in the order they are tried.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "state")
# Prefixes added by wrappers around the trained module, stripped when every key has one.
AUTO_PREFIXES = ("module.", "_orig_mod.")
# BatchNorm's step counter: never used in eval mode, and absent from many published files.
_IGNORABLE_MISSING = ("num_batches_tracked",)


def save_checkpoint(model: nn.Module, path: str | Path) -> str:
    """Atomically save ``model``'s state dict; return the file's SHA-256."""
    save_torch_atomic(model.state_dict(), path)
    return file_sha256(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_checkpoint_file(path: Path) -> Any:
    """The object stored in ``path`` (weights-only unpickling or safetensors)."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise BenchmarkError(
                f"{path}: reading .safetensors needs `pip install safetensors`"
            ) from None
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise BenchmarkError(
                f"{path}: cannot read safetensors file ({_first_line(exc)})"
            ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BenchmarkError(
            f"{path}: refused to load: not a weights-only checkpoint ({_first_line(exc)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise BenchmarkError(f"{path}: cannot read checkpoint ({_first_line(exc)})") from None


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:6]]
        more = ", ..." if len(obj) > 6 else ""
        return f"a dict with keys [{', '.join(keys)}{more}]"
    if isinstance(obj, list | tuple):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


def _tensors_only(obj: dict[Any, Any]) -> dict[str, torch.Tensor]:
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _follow_key(obj: Any, dotted: str, path: Path) -> Any:
    for part in dotted.split("."):
        if isinstance(obj, list | tuple) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise BenchmarkError(
                f"{path}: checkpoint_key '{dotted}': no '{part}' in {_describe(obj)}"
            )
    return obj


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Descend through wrapper dicts and one-element lists to the dict of tensors."""
    for _ in range(8):  # a real file nests two or three levels at most
        if isinstance(obj, list | tuple) and len(obj) == 1:
            obj = obj[0]
            continue
        if not isinstance(obj, dict):
            break
        tensors = _tensors_only(obj)
        wrappers = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict | list | tuple)]
        if tensors and not wrappers:
            return tensors
        if len(wrappers) > 1:
            raise BenchmarkError(
                f"{path}: ambiguous checkpoint: both {wrappers} could hold the weights; "
                "set 'checkpoint_key' on the model to the one to load"
            )
        if not wrappers:
            break
        obj = obj[wrappers[0]]
    raise BenchmarkError(
        f"{path}: no state dict of tensors found in {_describe(obj)}; set 'checkpoint_key' "
        "to the entry holding the weights (dotted, e.g. 'model.state_dict')"
    )


def extract_state_dict(
    obj: Any, path: Path, checkpoint_key: str | None = None, strip_prefix: str | None = None
) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint object (see the module docstring)."""
    if checkpoint_key is not None:
        obj = _follow_key(obj, checkpoint_key, path)
    state = _unwrap(obj, path)
    if strip_prefix is not None:
        if not any(k.startswith(strip_prefix) for k in state):
            sample = ", ".join(list(state)[:3])
            raise BenchmarkError(
                f"{path}: strip_prefix '{strip_prefix}': no key starts with it (keys: {sample}...)"
            )
        return {k.removeprefix(strip_prefix): v for k, v in state.items()}
    stripped = True
    while stripped:
        stripped = False
        for prefix in AUTO_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k.removeprefix(prefix): v for k, v in state.items()}
                stripped = True
    return state


def _shape_mismatches(target: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    own = target.state_dict()
    return [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:4])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > 4 else ''})"


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` (a :class:`NormalizedModel`, or any module) strictly.

    Accepts the state of the whole normalized model or of its backbone only (weights trained
    elsewhere, without our normalization wrapper). Every problem is reported in one line:
    shape mismatches with both shapes, then missing and unexpected key names.
    """
    target: nn.Module = model
    backbone = getattr(model, "backbone", None)
    if not any(k.startswith("backbone.") for k in state) and isinstance(backbone, nn.Module):
        target = backbone
    if mismatched := _shape_mismatches(target, state):
        raise BenchmarkError(
            f"{source}: weights do not match the model: {len(mismatched)} shape mismatch(es): "
            f"{'; '.join(mismatched[:3])}; check the model key and its params"
        )
    result = target.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(_IGNORABLE_MISSING)]
    problems = []
    if missing:
        problems.append(f"missing {_names(missing)}")
    if result.unexpected_keys:
        problems.append(f"unexpected {_names(list(result.unexpected_keys))}")
    if problems:
        raise BenchmarkError(
            f"{source}: weights do not match the model ({'; '.join(problems)}); "
            "check the model key and its params (or checkpoint_key / strip_prefix)"
        )


def load_checkpoint(
    model: nn.Module,
    path: str | Path,
    expected_sha256: str | None = None,
    *,
    checkpoint_key: str | None = None,
    strip_prefix: str | None = None,
) -> None:
    """Load weights into ``model`` from the file ``path``, in any layout of the module
    docstring. ``expected_sha256`` guards against tampered or truncated files."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: checkpoint file not found")
    if expected_sha256 is not None and (actual := file_sha256(path)) != expected_sha256:
        raise BenchmarkError(
            f"{path}: checkpoint hash mismatch (SHA-256 {actual[:12]}..., expected "
            f"{expected_sha256[:12]}...): file was modified or truncated"
        )
    state = extract_state_dict(read_checkpoint_file(path), path, checkpoint_key, strip_prefix)
    load_state_dict_into(model, state, str(path))
