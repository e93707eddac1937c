"""The ``standard`` recipe: cross-entropy training with SGD or Adam, warm-up and a step or
cosine schedule, crop+flip augmentation -- the :class:`~models.training.loop.TrainingLoop`
with no hook overridden.

Defaults are the CIFAR recipe of the spatial-smoothing paper (SPECS.md): SGD lr 0.1, momentum
0.9, weight decay 5e-4, 200 epochs, batch 128, x0.2 at epochs 60/130/160, 1 warm-up epoch.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from benchmark.datasets.base import ArrayDataset
from models.training.loop import (
    LoopParams,
    TrainingLoop,
    accuracy,
    augment,
    learning_rate,
    make_optimizer,
)
from models.training.recipes import TrainContext, register_recipe

__all__ = [
    "StandardParams",
    "accuracy",
    "augment",
    "learning_rate",
    "make_optimizer",
    "train_standard",
]


class StandardParams(LoopParams):
    """The shared loop parameters and nothing else."""


@register_recipe(
    "standard", "cross-entropy, SGD/Adam, warm-up + step/cosine schedule", StandardParams
)
def train_standard(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: StandardParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    return TrainingLoop(params, ctx).run(model, train, val)
