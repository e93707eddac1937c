"""``pgd_at``: PGD adversarial training (Madry et al. 2018), optionally with early stopping on
robust validation accuracy (Rice et al. 2020, "Overfitting in adversarially robust deep
learning").

Each batch is replaced by the PGD adversary of the *current* model: Linf eps 8/255, step
2/255, 10 steps, uniform random start, cross-entropy (the L2 variant used by the KAP
baselines: ``norm: L2``, 20 steps). The attack is ours (:func:`benchmark.attacks.pgd.run_pgd`,
without early stopping, so every example gets all steps); its random start draws from the
loop's saved generator, so training resumes exactly. The update always runs in ``train()``
mode.

The model's mode while the adversary is crafted is ``attack_mode``:

* ``"train"`` (the default): as in the reference implementations -- Madry et al.'s
  cifar10_challenge builds the attack on the training graph (batch norm with
  ``is_training=True``), and Rice et al.'s robust_overfitting ``train_cifar.py`` calls
  ``attack_pgd`` on the model left in ``model.train()``. BatchNorm normalizes with the
  attacked batch's own statistics and each attack step's forward pass updates its running
  statistics (train-time noise and dropout are active too);
* ``"eval"``: BatchNorm uses (and keeps) its running statistics, and train-time noise is
  off. Kept as an option: it is what this recipe did before ``attack_mode`` existed (select
  it to reproduce those checkpoints' setting), and it is how TRADES's reference crafts its
  adversary (models/training/trades.py). The adversary then attacks the deterministic model
  that is evaluated, and the running statistics see only the update's forward pass; the
  trained weights differ from the references'.

The robust validation of early stopping always attacks and scores the model in ``eval()``
mode, whatever ``attack_mode`` is, so it neither sees batch statistics nor changes them.

Schedule defaults are Rice et al.'s PreAct-ResNet-18 CIFAR-10 setting: SGD lr 0.1, momentum
0.9, weight decay 5e-4, 200 epochs, x0.1 at epochs 100 and 150, no warm-up. With
``early_stopping: true`` the robust accuracy on the validation split (same attack) is measured
after every epoch and the weights of the best epoch are the result; they are part of the
resume state.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from benchmark.attacks.base import AttackContext
from benchmark.attacks.pgd import run_pgd
from benchmark.attacks.threat import EpsField, Norm, parse_eps
from benchmark.datasets.base import ArrayDataset
from models.training.loop import BatchState, LoopParams, TrainingLoop
from models.training.recipes import TrainContext, register_recipe


class PGDATParams(LoopParams):
    norm: Norm = "Linf"
    eps: EpsField = "8/255"
    step_size: EpsField = "2/255"
    attack_steps: int = Field(10, ge=1)
    random_start: bool = True
    attack_mode: Literal["train", "eval"] = Field(
        "train",
        description=(
            "model mode while the training adversary is crafted: 'train' (Madry's and Rice's "
            "reference code: BatchNorm uses batch statistics and the attack's forward passes "
            "update its running statistics) or 'eval' (running statistics, left unchanged; "
            "no train-time noise). Robust validation always runs in eval mode"
        ),
    )
    early_stopping: bool = Field(False, description="keep the best robust-validation epoch")
    val_examples: int | None = Field(None, ge=1, description="robust validation subset size")
    milestones: tuple[int, ...] = (100, 150)
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: float = Field(0.0, ge=0)


class PGDATLoop(TrainingLoop):
    params: PGDATParams

    def __init__(self, params: PGDATParams, ctx: TrainContext) -> None:
        super().__init__(params, ctx)
        self.best: dict[str, Any] = {}

    def adversarial(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        mode: Literal["train", "eval"] | None = None,
    ) -> torch.Tensor:
        """PGD examples for (x, y) against ``model`` in ``mode`` (default: the recipe's
        ``attack_mode``); restores the model's mode."""
        p = self.params
        was_training = model.training
        model.train((mode or p.attack_mode) == "train")
        attack = AttackContext(
            model=model,
            norm=p.norm,
            eps=parse_eps(p.eps),
            device=x.device,
            seed=self.ctx.seed,
            batch_size=len(x),
            randomized=False,
            eot_samples=1,
            generator=generator,
        )
        x_adv = run_pgd(
            x,
            y,
            attack,
            steps=p.attack_steps,
            step_size=parse_eps(p.step_size),
            restarts=1,
            start_random=p.random_start,
            loss="ce",
            targeted=False,
            early_stop=False,
        )
        model.train(was_training)
        return x_adv.detach()

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: BatchState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return super().batch_loss(model, self.adversarial(model, x, y, state.generator), y, state)

    @torch.no_grad()
    def robust_accuracy(self, model: nn.Module, data: ArrayDataset) -> float:
        """Accuracy under the same PGD on (a subset of) ``data``, attacked and scored in eval
        mode whatever ``attack_mode`` is; restores the model's mode."""
        data = data.subset(self.params.val_examples, seed=0)
        generator = torch.Generator().manual_seed(self.ctx.seed)  # same start every epoch
        was_training = model.training
        model.eval()
        correct = 0
        for start in range(0, len(data), 256):
            x = data.x[start : start + 256].to(self.ctx.device)
            y = data.y[start : start + 256].to(self.ctx.device)
            with torch.enable_grad():
                x_adv = self.adversarial(model, x, y, generator, mode="eval")
            correct += int((model(x_adv).argmax(1) == y).sum())
        model.train(was_training)
        return 100.0 * correct / max(len(data), 1)

    def end_epoch(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        record: dict[str, Any],
    ) -> None:
        if not self.params.early_stopping or val is None or not len(val):
            return
        robust = self.robust_accuracy(model, val)
        record["val_robust_acc"] = robust
        if not self.best or robust > self.best["acc"]:
            weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self.best = {"acc": robust, "epoch": record["epoch"], "model": weights}

    def finish(self, model: nn.Module, train: ArrayDataset, val: ArrayDataset | None) -> None:
        if self.best:
            model.load_state_dict(self.best["model"])

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = copy.copy(state.get("best", {}))


@register_recipe(
    "pgd_at",
    "PGD adversarial training (Madry); Linf/L2; optional robust early stopping (Rice)",
    PGDATParams,
)
def train_pgd_at(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: PGDATParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    result = (loop := PGDATLoop(params, ctx)).run(model, train, val)
    if loop.best:
        result["best_epoch"] = loop.best["epoch"]
        result["best_val_robust_acc"] = loop.best["acc"]
    return result
