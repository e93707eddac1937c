"""Batched inference, the one piece of the engine that models and training recipes need.

It lives outside ``benchmark.evaluations`` so that ``models/`` (PEP's fit, AR-AdaLS's
calibration step) can predict without importing the attack and evaluation stack.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from benchmark.errors import BenchmarkError

# The reduced precisions a suite may ask for (``benchmark.suite.schema.Autocast``: the suite's
# ``autocast`` for prediction passes, a model's ``training.autocast`` for its training loop);
# None everywhere means float32.
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(name: str | None, device: torch.device, what: str) -> torch.dtype | None:
    """The dtype of the autocast setting ``name`` (None: float32) on ``device``, or a
    one-line error naming ``what`` (the suite field) when this device cannot run it."""
    if name is None:
        return None
    if name not in AUTOCAST_DTYPES:
        raise BenchmarkError(f"{what}: expected one of {sorted(AUTOCAST_DTYPES)}, got {name!r}")
    if not torch.amp.is_autocast_available(device.type):
        raise BenchmarkError(f"{what}: {name}: torch has no autocast for {device.type} devices")
    if device.type == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported():
        raise BenchmarkError(f"{what}: bf16: this CUDA device has no bfloat16 support; use fp16")
    return AUTOCAST_DTYPES[name]


def precision(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[None]:
    """Run the block under ``torch.autocast`` to ``dtype`` on ``device``'s type, or with
    autocast explicitly off (float32, whatever autocast a caller has enabled) when None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def check_finite(logits: torch.Tensor, desc: str) -> None:
    """Stop the job if any logit is NaN/inf: it has no softmax, and scoring it would turn a
    broken model into an accuracy (NaN argmax is 0) or an attack "success" on a perturbed
    input."""
    if torch.isfinite(logits).all():
        return
    bad = int((~torch.isfinite(logits)).flatten(1).any(1).sum())
    raise BenchmarkError(
        f"{desc}: the model returned non-finite logits (NaN/inf) for {bad} of {len(logits)} "
        "input(s) of a batch; no metric is computed from them"
    )


def predict_probs(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
    n_samples: int = 1,
    progress: bool = False,
    desc: str = "predict",
    autocast: torch.dtype | None = None,
) -> np.ndarray:
    """Softmax probabilities (float64, N x K); averaged over ``n_samples`` passes for
    randomized models (the mean-softmax prediction of MC dropout and ensembles). Every
    prediction any evaluation scores comes through here, so a non-finite logit on any input
    (clean, corrupted or adversarial, any batch size) is a one-line error, never a number.

    A batch that runs out of device memory is retried at half the size, and the smaller size
    is kept for the rest: a suite's ``batch_size`` then only has to be an upper bound. (Only
    here: attacks run on fixed blocks of ``batch_size`` examples, which also fix their random
    draws and shard boundaries, so they must not change size mid-run.)

    ``autocast`` (bfloat16/float16): the passes run under ``torch.autocast`` to that dtype
    and the logits are cast to float64 before the softmax. None (the default) is float32,
    with autocast explicitly off: a caller's autocast never reaches a prediction it did not
    ask for (attacks score their adversarial examples through here).
    """
    by_size = predict_probs_by_size(
        model,
        x,
        sizes=(n_samples,),
        batch_size=batch_size,
        device=device,
        progress=progress,
        desc=desc,
        autocast=autocast,
    )
    return by_size[n_samples]


@torch.inference_mode()
def predict_probs_by_size(
    model: nn.Module,
    x: torch.Tensor,
    *,
    sizes: tuple[int, ...],
    batch_size: int,
    device: torch.device,
    progress: bool = False,
    desc: str = "predict",
    autocast: torch.dtype | None = None,
) -> dict[int, np.ndarray]:
    """The mean-softmax prediction of the first n passes, for every n in ``sizes``, from
    ``max(sizes)`` passes in all (running sums: a sweep over the ensemble size of MC dropout
    costs the largest size only). See :func:`predict_probs`."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive pass counts, got {sizes}")
    wanted, most = sorted(set(sizes)), max(sizes)
    where = desc if autocast is None else f"{desc} (under {autocast} autocast)"
    chunks: dict[int, list[np.ndarray]] = {n: [] for n in wanted}
    bar = tqdm(total=len(x), desc=desc, unit="img", disable=not progress, leave=False)
    start, size = 0, batch_size
    while start < len(x):
        batch = x[start : start + size].to(device)
        try:
            probs, means = None, {}
            for done in range(1, most + 1):
                with precision(device, autocast):
                    logits = model(batch)
                check_finite(logits, where)
                p = torch.softmax(logits.double(), dim=1)
                probs = p if probs is None else probs + p
                if done in chunks:
                    means[done] = (probs / done).cpu().numpy()
        except torch.OutOfMemoryError:
            del batch
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if size == 1:
                raise BenchmarkError(
                    f"{desc}: out of {device} memory with a batch of one example"
                ) from None
            size //= 2
            continue
        for n, mean in means.items():
            chunks[n].append(mean)
        bar.update(len(batch))
        start += len(batch)
    bar.close()
    return {n: np.concatenate(c) if c else np.zeros((0, 0)) for n, c in chunks.items()}
