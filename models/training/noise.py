"""``gaussian_noise``: train on inputs with additive Gaussian noise N(0, sigma^2).

Why: the KAP paper (Bashivan et al., "Kernel Average Pooling", SPECS.md) trains its
KAP-ResNet-18 and its NT(sigma) baseline with noise of standard deviation sigma in {0.1, 0.2}
added to the input image *and* after each KAP layer (each conv in the baseline), during
training only. The activation noise lives inside those models (active in ``train()`` mode);
this recipe adds the input part. The noise is added to the [0, 1] image before the model's
own normalization and is not clipped (the paper says "additive", nothing more). Evaluation
never sees it: the loop's validation and every evaluation run the model on clean inputs.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from benchmark.datasets.base import ArrayDataset
from models.training.loop import BatchState, LoopParams, TrainingLoop
from models.training.recipes import TrainContext, register_recipe


class NoiseParams(LoopParams):
    sigma: float = Field(0.1, ge=0, description="std of the input noise (pixel scale [0, 1])")


class GaussianNoiseLoop(TrainingLoop):
    params: NoiseParams

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: BatchState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(x.shape, generator=state.generator).to(x.device)
        return super().batch_loss(model, x + self.params.sigma * noise, y, state)


@register_recipe(
    "gaussian_noise",
    "additive N(0, sigma^2) input noise during training only (KAP / NT(sigma))",
    NoiseParams,
)
def train_gaussian_noise(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: NoiseParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    return GaussianNoiseLoop(params, ctx).run(model, train, val)
