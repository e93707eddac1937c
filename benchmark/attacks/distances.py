"""Per-example minimal L2 distances to the decision boundary, verified.

Shared by the ``robustness_ranking`` evaluation and the AR-AdaLS training recipe, so it lives
with the attacks (not in ``benchmark.evaluations``): training code can rank examples without
loading the evaluation stack.

Which boundary: the AR-AdaLS paper's robustness is the smallest ``delta`` with
``f(x + delta) != f(x)``, i.e. relative to the model's *prediction*, so every example is
attacked away from its predicted class (:func:`attack_targets`, ``relative_to="prediction"``).
``relative_to="label"`` is the older convention: attack only correctly classified examples
away from their label and give misclassified ones distance 0.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from benchmark.attacks.base import MinimalNormAttack
from benchmark.attacks.threat import perturbation_norm
from benchmark.inference import predict_probs

RelativeTo = Literal["prediction", "label"]


def minimal_distances(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: MinimalNormAttack,
    device: torch.device,
    batch_size: int,
    progress: bool,
    desc: str = "minimal-L2",
) -> tuple[np.ndarray, torch.Tensor]:
    """Smallest L2 perturbation per example that moves the model off class ``y`` (+inf where
    none was found) and the adversarial inputs (the clean input where none)."""
    distances = np.full(len(x), np.inf)
    adversarials = x.clone()
    bar = tqdm(total=len(x), desc=desc, unit="ex", disable=not progress, leave=False)
    started = time.perf_counter()
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        dist, adv = attack.distances(model, xb, yb)
        distances[start : start + len(xb)] = dist.cpu().numpy()
        adversarials[start : start + len(xb)] = adv.cpu()
        bar.update(len(xb))
        bar.set_postfix(ex_per_s=f"{bar.n / (time.perf_counter() - started):.1f}")
    bar.close()
    return distances, adversarials


def verify_adversarials(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    adv: torch.Tensor,
    found: np.ndarray,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """True where no adversarial was claimed, or where the claimed one is off class ``y`` in
    a fresh forward pass, lies in [0, 1] and has the reported norm (relative tolerance 1e-4).
    An attack's own bookkeeping is never trusted for a number on the leaderboard."""
    claimed = np.isfinite(found)
    preds = predict_probs(model, adv, batch_size=batch_size, device=device).argmax(1)
    fooled = preds != y.numpy()
    norms = perturbation_norm(adv - x, "L2").numpy()
    in_range = ((adv >= 0) & (adv <= 1)).flatten(1).all(1).numpy()
    same_norm = np.isclose(norms, np.where(claimed, found, 0.0), rtol=1e-4, atol=1e-6)
    return ~claimed | (fooled & in_range & same_norm)


def attack_targets(
    predictions: np.ndarray, labels: np.ndarray, relative_to: RelativeTo
) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the examples to attack, the class each must be moved off).

    ``prediction``: every example, away from its predicted class. ``label``: only the
    correctly classified ones, away from their label (the rest have distance 0)."""
    if relative_to == "prediction":
        return np.arange(len(labels)), predictions
    todo = np.flatnonzero(predictions == labels)
    return todo, labels[todo]


def verified_minimal_distances(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    attack: MinimalNormAttack,
    relative_to: RelativeTo,
    device: torch.device,
    batch_size: int,
    progress: bool,
    desc: str = "minimal-L2",
    predictions: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance per example, indices attacked, verified flag per attacked example).

    Unverified adversarials get distance +inf; with ``relative_to="label"`` misclassified
    examples get 0 and are not attacked. ``predictions`` (argmax per example) saves a pass
    when the caller already has them."""
    if predictions is None:
        predictions = predict_probs(model, x, batch_size=batch_size, device=device).argmax(1)
    todo, targets = attack_targets(predictions, labels.numpy(), relative_to)
    index = torch.from_numpy(todo)
    x_todo, y_todo = x[index], torch.from_numpy(np.ascontiguousarray(targets)).long()
    found, adv = minimal_distances(
        model, x_todo, y_todo, attack, device, batch_size, progress, desc
    )
    verified = verify_adversarials(model, x_todo, y_todo, adv, found, device, batch_size)
    found[~verified] = np.inf
    distances = np.zeros(len(x))
    distances[todo] = found
    return distances, todo, verified
