"""``gaussian_noise``: train on inputs with additive Gaussian noise N(0, sigma^2).

Why: the KAP paper (Bashivan et al., "Kernel Average Pooling", SPECS.md, Sec. 4.1) trains its
KAP-ResNet-18 and its NT(sigma) baseline with noise of standard deviation sigma in {0.1, 0.2}
added to the input image *and* after each KAP layer (each conv in the baseline), during
training only. The recipe also serves plain models as Gaussian-noise data augmentation.

One source of input noise: the ``kap_*`` / ``nt_*`` models carry the paper's whole training
noise themselves, the input part included (a :class:`~models.layers.InputNoise` layer, active
in ``train()`` mode). Adding the recipe's noise on top would train them with std
sqrt(2) sigma on the input. So the recipe looks for that layer before training:

* the model has no input noise (plain ResNets, ``small_cnn``, a ``kap``/``nt`` model with
  sigma 0): the recipe adds N(0, sigma^2) to every training batch;
* the model's input noise has the recipe's sigma (``kap_resnet18 {sigma: 0.1}`` with
  ``gaussian_noise {sigma: 0.1}``, as in suites/cifar10.yaml): the recipe adds nothing -- the
  model's layer is the one source, and the input gets std sigma exactly once;
* the model's input noise has another sigma: a :class:`~benchmark.errors.BenchmarkError`
  before training, since no single std would be what both settings ask for.

The recipe's noise is added to the [0, 1] image before the model's own normalization and is
not clipped (the paper says "additive", nothing more); the model's layer adds the same noise
after normalization (std sigma / std_c per channel), which is the same distribution.
Evaluation never sees either: the loop's validation and every evaluation run the model on
clean inputs in ``eval()`` mode.

Version 2: version 1 added its noise also to models that carry input noise (sqrt(2) sigma on
the input of ``kap_*``/``nt_*`` models), so their cached checkpoints must not be reused.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from models.layers import InputNoise
from models.training.loop import BatchState, LoopParams, TrainingLoop
from models.training.recipes import TrainContext, register_recipe


class NoiseParams(LoopParams):
    sigma: float = Field(
        0.1,
        ge=0,
        description=(
            "std of the input noise (pixel scale [0, 1]); a model that carries input noise "
            "itself (kap_*/nt_*) must have the same sigma, and the recipe then adds none"
        ),
    )


def recipe_input_sigma(model: nn.Module, sigma: float) -> float:
    """The std of the input noise the recipe itself must add to train ``model`` with std
    ``sigma`` on its input: ``sigma`` if the model carries no input noise, 0 if its own
    :class:`InputNoise` already has std ``sigma``; raises if the model's std is another one."""
    carried = sorted({m.sigma for m in model.modules() if isinstance(m, InputNoise) and m.sigma})
    if not carried:
        return sigma
    if all(math.isclose(s, sigma, rel_tol=1e-9, abs_tol=1e-12) for s in carried):
        return 0.0
    raise BenchmarkError(
        f"gaussian_noise: recipe sigma {sigma} differs from the input noise the model adds "
        f"itself (sigma {', '.join(map(str, carried))}); set the recipe's sigma to the model's "
        "(the model's noise is then the only input noise) or train with another recipe"
    )


class GaussianNoiseLoop(TrainingLoop):
    params: NoiseParams

    def __init__(self, params: NoiseParams, ctx: TrainContext) -> None:
        super().__init__(params, ctx)
        self.sigma = params.sigma  # what this loop adds; set per model in setup()

    def setup(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        resumed: dict[str, Any] | None,
    ) -> None:
        self.sigma = recipe_input_sigma(model, self.params.sigma)

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: BatchState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sigma > 0:
            noise = torch.randn(x.shape, generator=state.generator).to(x.device)
            x = x + self.sigma * noise
        return super().batch_loss(model, x, y, state)


@register_recipe(
    "gaussian_noise",
    "additive N(0, sigma^2) input noise during training only (KAP / NT(sigma)); adds none "
    "to models that carry that input noise themselves",
    NoiseParams,
    version="2",
)
def train_gaussian_noise(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: NoiseParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    return GaussianNoiseLoop(params, ctx).run(model, train, val)
