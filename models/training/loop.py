"""The shared epoch loop every recipe runs; a recipe supplies only what differs.

Why one loop: seeding, data order, augmentation, the learning-rate schedule, validation and --
above all -- the per-epoch atomic resume state are easy to get subtly wrong, and a recipe that
re-implements them would either not resume or not resume *exactly*. A recipe subclasses
:class:`TrainingLoop` and overrides hooks:

* :meth:`~TrainingLoop.batch_loss` -- the per-batch loss (adversarial inputs, soft targets,
  input noise, ...);
* :meth:`~TrainingLoop.train_step` -- the optimizer step (SAM's two passes);
* :meth:`~TrainingLoop.lr_at` -- the schedule (FMFP's cosine-then-SWA schedule);
* :meth:`~TrainingLoop.setup`, :meth:`~TrainingLoop.end_epoch`, :meth:`~TrainingLoop.finish`
  -- work before, after each epoch (AR-AdaLS label updates, SWA averaging, robust early
  stopping) and at the end;
* :meth:`~TrainingLoop.state_dict` / :meth:`~TrainingLoop.load_state_dict` -- recipe state
  that must survive an interruption (soft labels, the SWA average, the best checkpoint).

Every epoch ends by atomically saving model, optimizer, RNG and recipe states, so an
interrupted run resumes from its last finished epoch and produces the same weights as an
uninterrupted one (on CPU). All randomness of a recipe must come from ``state.generator``
(saved) or the global torch RNG (saved), never from an unsaved source.

Mixed precision (``ctx.autocast``, a model's ``training.autocast``): the default
:meth:`~TrainingLoop.train_step` runs :meth:`~TrainingLoop.batch_loss` -- forward passes,
the loss, and whatever a recipe computes there (the adversarial examples of ``pgd_at`` and
``trades``) -- under ``torch.autocast``; backward and the optimizer step stay outside it,
the weights and their gradients stay float32. fp16 goes through a ``torch.amp.GradScaler``
(its state is part of the resume state), bf16 needs none. A recipe with its own
``train_step`` runs under autocast only when it declares that its step applies it
(``train_step_autocasts``, as ``sam_swa`` does for bf16); otherwise autocast is refused with
a one-line error rather than train in a precision it does not control. Validation and
end-of-epoch passes run in float32.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm import tqdm

from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.inference import precision
from benchmark.registry import StrictParams
from benchmark.utils import save_torch_atomic
from models.training.augment import random_crop, random_flip
from models.training.recipes import TrainContext

log = logging.getLogger(__name__)


class LoopParams(StrictParams):
    """Optimization parameters shared by every recipe.

    Defaults are the CIFAR recipe of the spatial-smoothing paper (SPECS.md): SGD lr 0.1,
    momentum 0.9, weight decay 5e-4, 200 epochs, batch 128, x0.2 at epochs 60/130/160, one
    warm-up epoch, random crop (padding 4) + horizontal flip.
    """

    epochs: int = Field(200, ge=1, le=100_000)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["multistep", "cosine", "constant"] = "multistep"
    milestones: tuple[int, ...] = (60, 130, 160)
    gamma: float = Field(0.2, gt=0)
    warmup_epochs: float = Field(1.0, ge=0)
    augment: Literal["crop_flip", "crop", "none"] = "crop_flip"
    crop_padding: int = Field(4, ge=0)


RESUME_KEYS = ("model", "optimizer", "generator", "torch_rng", "epoch", "history")


def resume_problem(saved: Any, model: nn.Module, epochs: int) -> str | None:
    """Why a per-epoch resume state cannot be applied to ``model`` (None: it can): a missing
    entry, weights whose names or shapes differ from the model's, an epoch out of range.
    Checked before anything is loaded, so a bad state never half-fills the model."""
    if not isinstance(saved, dict):
        return f"holds a {type(saved).__name__}, not a dict"
    missing = [k for k in RESUME_KEYS if k not in saved]
    if missing:
        return f"no {', '.join(missing)}"
    weights, expected = saved["model"], model.state_dict()
    if not isinstance(weights, dict) or set(weights) != set(expected):
        names = set(weights) if isinstance(weights, dict) else set()
        gone, extra = sorted(set(expected) - names), sorted(names - set(expected))
        return f"weights differ from the model's (missing {gone[:3]}, unexpected {extra[:3]})"
    for name, value in expected.items():
        if not isinstance(weights[name], torch.Tensor) or weights[name].shape != value.shape:
            found = tuple(getattr(weights[name], "shape", ()))
            return f"weight {name} has shape {found}, expected {tuple(value.shape)}"
    epoch = saved["epoch"]
    if not isinstance(epoch, int) or not 0 <= epoch <= epochs:
        return f"epoch {epoch!r} is not in [0, {epochs}]"
    if not isinstance(saved["history"], list):
        return "history is not a list"
    return None


def read_resume_state(path: Path, model: nn.Module, epochs: int) -> dict[str, Any] | None:
    """The per-epoch resume state at ``path``, or None to train from the start: a state that
    cannot be read back (truncated zip, bad pickle, empty file) or does not fit the model
    (:func:`resume_problem`) is reported in one line and removed, instead of crashing every
    rerun with a traceback in the middle of the recipe."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same case: start over
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        problem = f"unreadable ({reason})"
    else:
        unfit = resume_problem(saved, model, epochs)
        if unfit is None:
            return saved
        problem = unfit
    log.warning("resume state %s: %s; training from the start", path, problem)
    path.unlink(missing_ok=True)
    return None


def loop_params(params: LoopParams) -> dict[str, Any]:
    """Only the shared optimization fields of ``params`` (e.g. for a vanilla twin model)."""
    return {name: getattr(params, name) for name in LoopParams.model_fields}


def learning_rate(params: LoopParams, epoch_progress: float) -> float:
    """Learning rate at a fractional epoch: linear warm-up, then the chosen schedule."""
    if params.warmup_epochs > 0 and epoch_progress < params.warmup_epochs:
        return params.lr * (epoch_progress + 1e-3) / params.warmup_epochs
    if params.schedule == "multistep":
        passed = sum(epoch_progress >= m for m in params.milestones)
        return params.lr * params.gamma**passed
    if params.schedule == "cosine":
        span = max(params.epochs - params.warmup_epochs, 1e-8)
        t = min(max((epoch_progress - params.warmup_epochs) / span, 0.0), 1.0)
        return 0.5 * params.lr * (1 + math.cos(math.pi * t))
    return params.lr


def make_optimizer(model: nn.Module, params: LoopParams) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=params.lr,
        momentum=params.momentum,
        nesterov=params.nesterov,
        weight_decay=params.weight_decay,
    )


def augment(x: torch.Tensor, params: LoopParams, generator: torch.Generator) -> torch.Tensor:
    if params.augment in ("crop", "crop_flip"):
        x = random_crop(x, params.crop_padding, generator)
    if params.augment == "crop_flip":
        x = random_flip(x, generator)
    return x


@torch.inference_mode()
def accuracy(model: nn.Module, data: ArrayDataset, device: torch.device, batch: int = 512) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(data), batch):
        logits = model(data.x[start : start + batch].to(device))
        correct += int((logits.argmax(1).cpu() == data.y[start : start + batch]).sum())
    return 100.0 * correct / max(len(data), 1)


@dataclass
class BatchState:
    """What the per-batch hooks get besides the model and the (augmented) batch."""

    epoch: int  # 0-based
    step: int  # 0-based within the epoch
    indices: torch.Tensor  # positions of the batch's examples in the training split
    generator: torch.Generator  # the loop's seeded CPU generator (part of the resume state)
    logs: dict[str, float] = field(default_factory=dict)  # scalars averaged into the record


class TrainingLoop:
    """Mini-batch training with per-epoch atomic resume state; see the module docstring."""

    def __init__(self, params: LoopParams, ctx: TrainContext) -> None:
        self.params = params
        self.ctx = ctx
        # loss scaling against float16 gradient underflow; a no-op otherwise (bf16, float32)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.autocast == torch.float16)

    # ----- hooks -----------------------------------------------------------------------------

    def setup(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        resumed: dict[str, Any] | None,
    ) -> None:
        """Prepare recipe state before the first epoch; ``resumed`` is the recipe state of an
        interrupted run (it is loaded into the loop afterwards). May use the global RNG: the
        loop re-seeds it afterwards."""

    def lr_at(self, epoch_progress: float) -> float:
        return learning_rate(self.params, epoch_progress)

    # A subclass with its own ``train_step`` sets this when that step runs its forward
    # passes under ``precision(ctx.device, ctx.autocast)`` itself; otherwise autocast is refused.
    train_step_autocasts: ClassVar[bool] = False

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: BatchState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss to minimize on this batch and the logits used for training accuracy."""
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        state: BatchState,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with precision(self.ctx.device, self.ctx.autocast):
            loss, logits = self.batch_loss(model, x, y, state)
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        return loss, logits

    def end_epoch(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        record: dict[str, Any],
    ) -> None:
        """Called after each epoch's validation, before the resume state is saved; may add
        entries to ``record`` (the epoch's history row)."""

    def finish(self, model: nn.Module, train: ArrayDataset, val: ArrayDataset | None) -> None:
        """Called once after the last epoch (e.g. to install averaged or best weights)."""

    def state_dict(self) -> dict[str, Any]:
        """Recipe state saved with every epoch (tensors, numbers, lists, dicts only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    # ----- driver ----------------------------------------------------------------------------

    def run(
        self, model: nn.Module, train: ArrayDataset, val: ArrayDataset | None
    ) -> dict[str, Any]:
        params, ctx = self.params, self.ctx
        own_step = type(self).train_step is not TrainingLoop.train_step
        if ctx.autocast is not None and own_step and not self.train_step_autocasts:
            raise BenchmarkError(
                f"training.autocast: {type(self).__name__} has its own train_step, which does "
                "not run under autocast; train this recipe in float32 (autocast: null)"
            )
        model.to(ctx.device)
        saved = read_resume_state(ctx.state_path, model, params.epochs)
        self.setup(model, train, val, None if saved is None else saved.get("recipe", {}))
        torch.manual_seed(ctx.seed)
        optimizer = make_optimizer(model, params)
        generator = torch.Generator().manual_seed(ctx.seed)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            start_epoch, history = int(saved["epoch"]), list(saved["history"])
            self.load_state_dict(saved.get("recipe", {}))
            if self.scaler.is_enabled() and "scaler" in saved:
                self.scaler.load_state_dict(saved["scaler"])

        steps_per_epoch = math.ceil(len(train) / params.batch_size)
        bar = tqdm(
            range(start_epoch, params.epochs),
            initial=start_epoch,
            total=params.epochs,
            desc=ctx.name,
            unit="epoch",
            disable=not ctx.progress,
            leave=False,
        )
        for epoch in bar:
            model.train()
            order = torch.randperm(len(train), generator=generator)
            total_loss, total_correct = 0.0, 0
            logged: dict[str, float] = {}
            for step in range(steps_per_epoch):
                batch = order[step * params.batch_size : (step + 1) * params.batch_size]
                x = augment(train.x[batch], params, generator).to(ctx.device)
                y = train.y[batch].to(ctx.device)
                for group in optimizer.param_groups:
                    group["lr"] = self.lr_at(epoch + step / steps_per_epoch)
                state = BatchState(epoch, step, batch, generator)
                loss, logits = self.train_step(model, optimizer, x, y, state)
                total_loss += float(loss.detach()) * len(batch)
                total_correct += int((logits.argmax(1) == y).sum())
                for key, value in state.logs.items():
                    logged[key] = logged.get(key, 0.0) + value * len(batch)
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "loss": total_loss / len(train),
                "train_acc": 100.0 * total_correct / len(train),
                **{key: value / len(train) for key, value in logged.items()},
            }
            if val is not None and len(val):
                record["val_acc"] = accuracy(model, val, ctx.device)
            self.end_epoch(model, train, val, record)
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_acc']:.1f}")
            save_torch_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "epoch": epoch + 1,
                    "history": history,
                    "recipe": self.state_dict(),
                    **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
                },
                ctx.state_path,
            )
        self.finish(model, train, val)
        model.eval()
        return {"history": history}
