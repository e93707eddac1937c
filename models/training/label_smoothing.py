"""``label_smoothing``: cross-entropy against smoothed targets (Szegedy et al. 2016).

Target of an example with label y: ``onehot(y) * (1 - eps) + eps / Z`` (Z classes), i.e. the
true class keeps ``1 - eps + eps / Z`` and every other class gets ``eps / Z``. AR-AdaLS
(Qin et al. 2021, Eq. 1) writes its per-stratum soft labels in the same form, so
:func:`smooth_targets` and :func:`soft_cross_entropy` are shared with
:mod:`models.training.ar_adals`. Default eps 0.1 (the usual value; the FMFP paper uses 0.05,
AR-AdaLS swept [0, 0.1] and found 0.02 on CIFAR-10).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from benchmark.datasets.base import ArrayDataset
from models.training.loop import BatchState, LoopParams, TrainingLoop
from models.training.recipes import TrainContext, register_recipe


def smooth_targets(y: torch.Tensor, eps: float | torch.Tensor, num_classes: int) -> torch.Tensor:
    """``onehot * (1 - eps) + eps / Z``; ``eps`` a float or one value per example."""
    eps_t = torch.as_tensor(eps, dtype=torch.float32, device=y.device).reshape(-1, 1)
    onehot = F.one_hot(y, num_classes).float()
    return onehot * (1 - eps_t) + eps_t / num_classes


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k t_k log softmax(logits)_k``."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


class LabelSmoothingParams(LoopParams):
    eps: float = Field(0.1, ge=0, lt=1, description="smoothing mass spread over all classes")


class LabelSmoothingLoop(TrainingLoop):
    params: LabelSmoothingParams

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: BatchState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        targets = smooth_targets(y, self.params.eps, logits.shape[1])
        return soft_cross_entropy(logits, targets), logits


@register_recipe(
    "label_smoothing", "cross-entropy on onehot*(1-eps)+eps/Z targets", LabelSmoothingParams
)
def train_label_smoothing(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: LabelSmoothingParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    return LabelSmoothingLoop(params, ctx).run(model, train, val)
