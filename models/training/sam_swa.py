"""``sam_swa``: FMFP -- Flat Minima for Failure Prediction (Zhu et al. 2022): sharpness-aware
minimization (Foret et al. 2021) combined with stochastic weight averaging (Izmailov et al.
2018).

SAM: each step computes the gradient g at the weights w, moves to ``w + rho * g / ||g||_2``
(one L2 norm over all parameters), computes the gradient there, returns to w and lets SGD
(momentum, weight decay) step with that second gradient: two forward/backward passes per step.
BatchNorm is in train mode in both passes, as in the reference ``train_fmfp.py``.

Schedule (reference ``main_fmfp.py``): SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch
128; per-epoch cosine annealing with period ``cosine_epochs`` = 100 (``CosineAnnealingLR
(T_max=100)``) until ``swa_start`` = 120; after every later epoch the weights are averaged
into the SWA model (``AveragedModel``) while the lr is annealed to ``swa_lr`` = 0.05 over
``swa_anneal_epochs`` = 10 epochs (cosine, as ``SWALR``) and held there. At the end the SWA
weights replace the model's and BatchNorm statistics are recomputed on the training images
(``update_bn``). ``swa: false`` is SAM alone and ``rho: 0`` is SWA alone (one pass per
step), the two ablations of the FMFP paper. The lr is computed in closed form rather than
by stepping ``SWALR`` and ``CosineAnnealingLR`` objects, so it is a pure function of the
epoch like every other recipe's schedule and needs no scheduler state to resume; it gives
the same values.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.inference import precision
from models.training.loop import BatchState, LoopParams, TrainingLoop
from models.training.recipes import TrainContext, register_recipe


class SamSwaParams(LoopParams):
    rho: float = Field(0.05, ge=0, description="SAM neighbourhood radius (L2, all weights)")
    swa_start: int = Field(120, ge=0, description="average after every later epoch")
    swa_lr: float = Field(0.05, gt=0)
    swa_anneal_epochs: int = Field(10, ge=0)
    cosine_epochs: int = Field(100, ge=1, description="T_max of the cosine phase")
    warmup_epochs: float = Field(0.0, ge=0)
    swa: bool = Field(
        True, description="average weights after swa_start; false: SAM alone (cosine to the end)"
    )

    @model_validator(mode="after")
    def _averages_something(self) -> SamSwaParams:
        if self.swa and self.swa_start >= self.epochs:
            raise ValueError(f"swa_start ({self.swa_start}) must be below epochs ({self.epochs})")
        return self


def sam_swa_lr(params: SamSwaParams, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: cosine up to ``swa_start``, then annealed to
    ``swa_lr`` over ``swa_anneal_epochs`` epochs."""

    def cosine(e: int) -> float:
        return 0.5 * params.lr * (1 + math.cos(math.pi * e / params.cosine_epochs))

    if not params.swa or epoch <= params.swa_start:
        return cosine(epoch)
    k = epoch - params.swa_start
    t = min(k / params.swa_anneal_epochs, 1.0) if params.swa_anneal_epochs else 1.0
    alpha = 0.5 * (1 - math.cos(math.pi * t))
    return params.swa_lr * alpha + cosine(params.swa_start) * (1 - alpha)


class SamSwaLoop(TrainingLoop):
    params: SamSwaParams
    # both passes run under bf16 autocast when asked; fp16 would need the gradient scaler
    # inside the SAM step (unscaled norms), so it is refused in setup
    train_step_autocasts: ClassVar[bool] = True

    def setup(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        resumed: dict[str, Any] | None,
    ) -> None:
        if self.ctx.autocast == torch.float16:
            raise BenchmarkError(
                "training.autocast: sam_swa supports bf16 (or float32), not fp16: its "
                "perturbation norm would be taken on scaled gradients"
            )
        self.swa = AveragedModel(model)

    def lr_at(self, epoch_progress: float) -> float:
        return sam_swa_lr(self.params, math.floor(epoch_progress))

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        state: BatchState,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        weights = [p for p in model.parameters() if p.requires_grad]
        with precision(self.ctx.device, self.ctx.autocast):
            loss, logits = self.batch_loss(model, x, y, state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.params.rho == 0:  # SWA alone: the second pass would repeat the first
            optimizer.step()
            return loss, logits
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in weights]
        norm = torch.linalg.vector_norm(torch.stack([g.norm(2) for g in grads]), 2)
        scale = self.params.rho / (norm + 1e-12)
        with torch.no_grad():
            shifts = [g * scale for g in grads]
            for p, e in zip(weights, shifts, strict=True):
                p.add_(e)
        optimizer.zero_grad(set_to_none=True)
        with precision(self.ctx.device, self.ctx.autocast):
            second = self.batch_loss(model, x, y, state)[0]
        second.backward()
        with torch.no_grad():
            for p, e in zip(weights, shifts, strict=True):
                p.sub_(e)
        optimizer.step()
        return loss, logits

    def end_epoch(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        record: dict[str, Any],
    ) -> None:
        if self.params.swa and record["epoch"] > self.params.swa_start:
            self.swa.update_parameters(model)
        record["swa_models"] = int(self.swa.n_averaged)

    def finish(self, model: nn.Module, train: ArrayDataset, val: ArrayDataset | None) -> None:
        if not self.params.swa:
            return
        batches = [
            train.x[start : start + self.params.batch_size]
            for start in range(0, len(train), self.params.batch_size)
        ]
        update_bn(batches, self.swa, device=self.ctx.device)
        model.load_state_dict(self.swa.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"swa": self.swa.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.swa.load_state_dict(state["swa"])


@register_recipe(
    "sam_swa",
    "FMFP: SAM (rho 0.05) + SWA after epoch 120 (swa_lr 0.05), BN recomputed at the end",
    SamSwaParams,
)
def train_sam_swa(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: SamSwaParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    return SamSwaLoop(params, ctx).run(model, train, val)
