"""Batched prediction and the per-example record table shared by all evaluations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from benchmark.datasets.base import ArrayDataset
from benchmark.metrics import (
    accuracy,
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
)


@torch.inference_mode()
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
    randomized models (the mean-softmax prediction of MC dropout and ensembles)."""
    chunks = []
    starts = range(0, len(x), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        batch = x[start : start + batch_size].to(device)
        probs = None
        for _ in range(n_samples):
            p = torch.softmax(model(batch).double(), dim=1)
            probs = p if probs is None else probs + p
        chunks.append((probs / n_samples).cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 0))


def prediction_records(data: ArrayDataset, probs: np.ndarray) -> pd.DataFrame:
    """One row per example: dataset index, label, prediction, confidence, correctness, and the
    full probability vector as columns ``prob_0 .. prob_{K-1}``."""
    labels = data.y.numpy()
    preds = probs.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "index": data.indices.numpy(),
            "label": labels,
            "pred": preds,
            "confidence": probs.max(axis=1),
            "correct": preds == labels,
        }
    )
    prob_columns = pd.DataFrame(probs, columns=[f"prob_{k}" for k in range(probs.shape[1])])
    return pd.concat([frame, prob_columns], axis=1)


def probabilities_from_records(records: pd.DataFrame) -> np.ndarray:
    columns = sorted(
        (c for c in records.columns if c.startswith("prob_")), key=lambda c: int(c[5:])
    )
    return records[columns].to_numpy(dtype=np.float64)


def summary_metrics(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """The leaderboard's core columns; names carry their scale (``_pct`` = percent)."""
    correct = probs.argmax(axis=1) == labels
    return {
        "acc_pct": 100.0 * accuracy(probs, labels),
        "nll": negative_log_likelihood(probs, labels),
        "brier": brier_score(probs, labels),
        "ece_pct": 100.0 * expected_calibration_error(probs.max(axis=1), correct, n_bins),
    }
