"""The ``standard`` recipe: cross-entropy training with SGD or Adam, warm-up and a step or
cosine schedule, crop+flip augmentation.

Defaults are the CIFAR recipe of the spatial-smoothing paper (SPECS.md): SGD lr 0.1, momentum
0.9, weight decay 5e-4, 200 epochs, batch 128, x0.2 at epochs 60/130/160, 1 warm-up epoch.

Every epoch ends by atomically saving model, optimizer and RNG states, so an interrupted run
resumes from its last finished epoch and produces the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm import tqdm

from benchmark.datasets.base import ArrayDataset
from benchmark.registry import StrictParams
from benchmark.utils import atomic_path
from models.training.augment import random_crop, random_flip
from models.training.recipes import TrainContext, register_recipe


class StandardParams(StrictParams):
    epochs: int = Field(200, ge=1)
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


def learning_rate(params: StandardParams, epoch_progress: float) -> float:
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


def make_optimizer(model: nn.Module, params: StandardParams) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=params.lr,
        momentum=params.momentum,
        nesterov=params.nesterov,
        weight_decay=params.weight_decay,
    )


def augment(x: torch.Tensor, params: StandardParams, generator: torch.Generator) -> torch.Tensor:
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
    model.to(ctx.device)
    optimizer = make_optimizer(model, params)
    generator = torch.Generator().manual_seed(ctx.seed)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if ctx.state_path.is_file():
        state = torch.load(ctx.state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, history = int(state["epoch"]), list(state["history"])

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
        for step in range(steps_per_epoch):
            batch = order[step * params.batch_size : (step + 1) * params.batch_size]
            x = augment(train.x[batch], params, generator).to(ctx.device)
            y = train.y[batch].to(ctx.device)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(params, epoch + step / steps_per_epoch)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(batch)
            total_correct += int((logits.argmax(1) == y).sum())
        record = {
            "epoch": epoch + 1,
            "loss": total_loss / len(train),
            "train_acc": 100.0 * total_correct / len(train),
        }
        if val is not None and len(val):
            record["val_acc"] = accuracy(model, val, ctx.device)
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_acc']:.1f}")
        with atomic_path(ctx.state_path) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "epoch": epoch + 1,
                    "history": history,
                },
                tmp,
            )
    model.eval()
    return {"history": history}
