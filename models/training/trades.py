"""``trades``: TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between
Robustness and Accuracy").

Loss: ``CE(f(x), y) + beta * KL(softmax f(x) || softmax f(x'))`` with beta 6, where x'
maximizes that KL term in the Linf ball of radius 0.031 around x: start at
``x + 0.001 * N(0, 1)``, 10 signed-gradient steps of 0.007, each projected onto the ball and
clipped to [0, 1], with the model in ``eval()`` mode, as in the reference ``trades.py``
(yaodongyu/TRADES), which calls ``model.eval()`` before generating x' and ``model.train()``
afterwards: BatchNorm uses its running statistics and is not updated by the attack. (PGD-AT's
references attack in train mode instead; see models/training/pgd_at.py.)

The inner maximization is written here rather than taken from
:func:`benchmark.attacks.pgd.run_pgd`: its objective is the KL to the model's own clean
prediction, not a loss of the label, and its start is Gaussian, not uniform; the projection is
shared (:func:`benchmark.attacks.threat.project`).

Schedule defaults follow the reference ``train_trades_cifar10.py``: SGD lr 0.1, momentum 0.9,
weight decay 2e-4, batch 128, 80 epochs, x0.1 from (1-based) epoch 75, no warm-up.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from benchmark.attacks.base import frozen_parameters
from benchmark.attacks.threat import EpsField, parse_eps, project
from benchmark.datasets.base import ArrayDataset
from models.training.loop import BatchState, LoopParams, TrainingLoop
from models.training.recipes import TrainContext, register_recipe


class TradesParams(LoopParams):
    beta: float = Field(6.0, ge=0, description="weight of the KL (robustness) term, 1/lambda")
    eps: EpsField = "0.031"
    step_size: EpsField = "0.007"
    attack_steps: int = Field(10, ge=1)
    start_std: float = Field(0.001, ge=0)
    epochs: int = Field(80, ge=1, le=100_000)
    weight_decay: float = Field(2e-4, ge=0)
    milestones: tuple[int, ...] = (74, 89, 99)
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: float = Field(0.0, ge=0)


def trades_kl(logits_adv: torch.Tensor, logits_clean: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(clean) || softmax(adv))`` summed over classes, averaged over the batch."""
    return F.kl_div(
        F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction="batchmean"
    )


def trades_adversarial(
    model: nn.Module, x: torch.Tensor, params: TradesParams, generator: torch.Generator
) -> torch.Tensor:
    """x' maximizing the KL to the clean prediction (model in eval mode; mode restored)."""
    eps, step = parse_eps(params.eps), parse_eps(params.step_size)
    was_training = model.training
    # Eval mode on purpose, unlike pgd_at's default: the reference trades.py calls
    # model.eval() while crafting x' and model.train() after it.
    model.eval()
    with frozen_parameters(model):
        with torch.no_grad():
            logits_clean = model(x)
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        x_adv = x + params.start_std * noise
        for _ in range(params.attack_steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(trades_kl(model(x_adv), logits_clean), x_adv)
            x_adv = x_adv.detach() + step * grad.sign()
            x_adv = (x + project(x_adv - x, "Linf", eps)).clamp(0, 1)
    model.train(was_training)
    return x_adv.detach()


class TradesLoop(TrainingLoop):
    params: TradesParams

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: BatchState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = trades_adversarial(model, x, self.params, state.generator)
        logits = model(x)
        natural = F.cross_entropy(logits, y)
        kl = trades_kl(model(x_adv), logits)
        state.logs["natural_loss"] = float(natural.detach())
        state.logs["kl"] = float(kl.detach())
        return natural + self.params.beta * kl, logits


@register_recipe(
    "trades", "TRADES: CE + beta * KL(f(x) || f(x')), x' maximizing the KL (Linf)", TradesParams
)
def train_trades(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: TradesParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    return TradesLoop(params, ctx).run(model, train, val)
