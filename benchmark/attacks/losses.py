"""Per-example attack objectives (to be maximized); each returns a tensor of shape (N,)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> torch.Tensor:
    """Untargeted: CE of the true class. Targeted: minus CE of the target class."""
    if target is None:
        return F.cross_entropy(logits, y, reduction="none")
    return -F.cross_entropy(logits, target, reduction="none")


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Z_y - max_{i != y} Z_i per example: negative exactly when the example is
    misclassified, piecewise linear for ReLU networks and never saturated (unlike CE)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.clone()
    others.scatter_(1, y[:, None], float("-inf"))
    return true - others.amax(1)


def dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Difference-of-logits-ratio loss of Croce & Hein (2020), Eq. 6 (untargeted) and the
    targeted version of APGD-T; invariant to shifting and rescaling the logits, which keeps it
    informative on models whose softmax saturates. Needs at least 3 (targeted: 4) classes."""
    ordered, _ = logits.sort(dim=1, descending=True)
    true = logits.gather(1, y[:, None]).squeeze(1)
    if target is None:
        others = logits.clone()
        others.scatter_(1, y[:, None], float("-inf"))
        best_other = others.amax(1)
        return -(true - best_other) / (ordered[:, 0] - ordered[:, 2] + 1e-12)
    target_logit = logits.gather(1, target[:, None]).squeeze(1)
    scale = ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + 1e-12
    return -(true - target_logit) / scale


LOSSES = {"ce": cross_entropy, "dlr": dlr}
