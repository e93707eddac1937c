"""Adversarial examples out of a run: what ``save_adversarial: true`` stores, and reading it
back.

An attack evaluation with ``save_adversarial`` writes ``adversarial.npz`` into its result
folder, beside ``records.parquet`` and checksummed with it (a damaged file makes the entry
be recomputed, never read): the final per-example inputs the robust accuracy was counted on
(the adversarial input where the example was broken, the clean one otherwise), their
dataset indices, labels and robust flags, and the threat model. Anyone can then re-check
them (in the ball, in [0, 1], misclassified) or evaluate them on another model
(:func:`load_adversarial`, :func:`transfer_accuracy`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.inference import predict_probs

ADVERSARIAL_FILE = "adversarial.npz"


def adversarial_npz(data: Any, outcome: dict[str, Any]) -> bytes:
    """The compressed archive of one evaluation's final inputs (float32, lossless: a rounded
    input could leave the eps-ball or stop being adversarial)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        x=outcome["x_best"].numpy().astype(np.float32),
        index=data.indices.numpy(),
        label=data.y.numpy(),
        robust=outcome["robust"].numpy(),
        clean_correct=outcome["clean_correct"].numpy(),
    )
    return buffer.getvalue()


@dataclass(frozen=True)
class SavedAdversarial:
    x: torch.Tensor  # (N, C, H, W) in [0, 1]
    index: np.ndarray  # dataset index of each example
    label: torch.Tensor
    robust: np.ndarray  # robust on the attacked model
    clean_correct: np.ndarray
    source: Path


def load_adversarial(result_dir: str | Path) -> SavedAdversarial:
    """The saved inputs of one cached result folder (``<cache>/results/<key>``), verified
    against the entry's checksums first."""
    from benchmark.runner.cache import entry_problem

    folder = Path(result_dir)
    path = folder / ADVERSARIAL_FILE
    if not path.is_file():
        raise BenchmarkError(
            f"{folder}: no {ADVERSARIAL_FILE} (run the evaluation with save_adversarial: true)"
        )
    if (problem := entry_problem(folder)) is not None:
        raise BenchmarkError(f"{folder}: {problem}; rerun the suite to recompute it")
    with np.load(path, allow_pickle=False) as archive:
        return SavedAdversarial(
            torch.from_numpy(archive["x"]),
            archive["index"],
            torch.from_numpy(archive["label"]),
            archive["robust"],
            archive["clean_correct"],
            path,
        )


def transfer_accuracy(
    model: nn.Module,
    saved: SavedAdversarial,
    batch_size: int = 256,
    device: torch.device | None = None,
) -> float:
    """Accuracy (percent) of ``model`` on the saved inputs, predicted as the evaluations
    predict (:func:`benchmark.inference.predict_probs`): a transfer attack's robust
    accuracy when the inputs were crafted on another model."""
    model.eval()
    device = device or torch.device("cpu")
    probs = predict_probs(model, saved.x, batch_size=batch_size, device=device)
    return 100.0 * float((probs.argmax(1) == saved.label.numpy()).mean()) if len(probs) else 0.0
