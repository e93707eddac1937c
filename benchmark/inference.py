"""Batched inference, the one piece of the engine that models and training recipes need.

It lives outside ``benchmark.evaluations`` so that ``models/`` (PEP's fit, AR-AdaLS's
calibration step) can predict without importing the attack and evaluation stack.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from benchmark.errors import BenchmarkError


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
) -> np.ndarray:
    """Softmax probabilities (float64, N x K); averaged over ``n_samples`` passes for
    randomized models (the mean-softmax prediction of MC dropout and ensembles). Every
    prediction any evaluation scores comes through here, so a non-finite logit on any input
    (clean, corrupted or adversarial, any batch size) is a one-line error, never a number.

    A batch that runs out of device memory is retried at half the size, and the smaller size
    is kept for the rest: a suite's ``batch_size`` then only has to be an upper bound. (Only
    here: attacks run on fixed blocks of ``batch_size`` examples, which also fix their random
    draws and shard boundaries, so they must not change size mid-run.)
    """
    by_size = predict_probs_by_size(
        model,
        x,
        sizes=(n_samples,),
        batch_size=batch_size,
        device=device,
        progress=progress,
        desc=desc,
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
) -> dict[int, np.ndarray]:
    """The mean-softmax prediction of the first n passes, for every n in ``sizes``, from
    ``max(sizes)`` passes in all (running sums: a sweep over the ensemble size of MC dropout
    costs the largest size only). See :func:`predict_probs`."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive pass counts, got {sizes}")
    wanted, most = sorted(set(sizes)), max(sizes)
    chunks: dict[int, list[np.ndarray]] = {n: [] for n in wanted}
    bar = tqdm(total=len(x), desc=desc, unit="img", disable=not progress, leave=False)
    start, size = 0, batch_size
    while start < len(x):
        batch = x[start : start + size].to(device)
        try:
            probs, means = None, {}
            for done in range(1, most + 1):
                logits = model(batch)
                check_finite(logits, desc)
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
