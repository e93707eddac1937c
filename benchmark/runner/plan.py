"""What a suite run will cost before it starts: the jobs and trainings left to run, the passes
each needs, and this device's measured throughput of each architecture.

Passes come from declarations next to the code that spends them: a training needs ``epochs x
training images x passes per image`` (:func:`passes_per_image`: 1 for plain training, one
more per attack step of adversarial training, one more for SAM's second step; AR-AdaLS's
ranking of the training images is not counted), an evaluation
:meth:`~benchmark.evaluations.base.Evaluation.planned_passes` (forward and input-gradient
images; attacks through :meth:`~benchmark.attacks.base.AttackBase.planned_passes`). For
attacks these are *upper bounds*: every example is assumed to survive every step, whereas
early stopping and the worst-case sequence skip the examples already broken -- on a model
without robustness most of the budget. Throughput is timed on randomly initialised copies of
each architecture (a few batches; weights do not change the cost), so planning trains and
loads nothing. Randomized models (EOT, several passes per prediction) are planned as
deterministic ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.datasets.base import ArrayDataset, DataInfo
from benchmark.runner.cache import ResultCache
from benchmark.runner.jobs import expand_jobs, training_job
from benchmark.runner.worker import SuiteData
from benchmark.suite.schema import ModelSpec, Suite
from benchmark.utils import format_duration, resolve_device


@dataclass
class PlannedWork:
    """One training or evaluation job of the plan."""

    kind: str  # "train" or "evaluate"
    label: str
    row: str
    cached: bool
    forward_images: int = 0
    grad_images: int = 0  # input gradients (attacks)
    train_images: int = 0  # parameter gradients and an optimizer step (training)
    seconds: float | None = None  # estimate from measured throughput; None: not measured


@dataclass(frozen=True)
class Throughput:
    """Images per second of one architecture on this device."""

    forward: float
    input_grad: float
    train: float


def _time_best(fn: Callable[[], object], repeats: int = 2) -> float:
    fn()  # warm-up (allocations, kernel choice)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def measure_throughput(
    spec: ModelSpec, info: DataInfo, device: torch.device, batch: int, train_batch: int
) -> Throughput:
    """Forward, input-gradient and training-step throughput of ``spec``'s architecture
    (random weights) at the evaluation and training batch sizes."""
    from models import build_model

    model = build_model(spec.model, spec.params, info).to(device)
    shape = (info.in_channels, *info.image_size)
    x = torch.rand(batch, *shape, device=device)
    xt = torch.rand(train_batch, *shape, device=device)
    yt = torch.randint(0, info.num_classes, (train_batch,), device=device)
    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def input_grad() -> None:
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xg).logsumexp(1).sum(), xg)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the weights stay put

    def train_step() -> None:
        model.train()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        optimizer.step()
        model.eval()

    return Throughput(
        forward=batch / _time_best(forward),
        input_grad=batch / _time_best(input_grad),
        train=train_batch / _time_best(train_step),
    )


def _architecture(spec: ModelSpec) -> str:
    return json.dumps([spec.model, spec.params], sort_keys=True, default=str)


def plan_suite(
    suite: Suite, measure: bool = True, log: Callable[[str], None] = lambda _: None
) -> list[PlannedWork]:
    """Every training and evaluation job of ``suite``: cached or not, its passes and, with
    ``measure``, its estimated seconds on the suite's device."""
    from models.training import RECIPES, checkpoint_path

    device = resolve_device(suite.device)
    data = SuiteData(suite)
    evaluation_set: ArrayDataset = data.evaluation_set()
    info = evaluation_set.info
    cache = ResultCache(suite.cache_root)
    folder = Path(suite.cache_root) / "checkpoints"
    work: list[PlannedWork] = []
    specs: dict[str, ModelSpec] = {}  # row -> a single-model spec of its architecture
    members_of: dict[str, int] = {}  # row -> models whose passes one job of the row costs

    for spec in suite.models:
        members = suite.ensemble_members(spec) or [spec]
        specs[spec.row_name] = members[0]
        members_of[spec.row_name] = len(members)
        # what this row trains itself: a seeds ensemble one checkpoint per member; an
        # ensemble of other rows nothing (those rows plan their own trainings)
        trained = spec.members() or [spec]
        for member in trained:
            if member.training is None:
                continue
            training = training_job(member, suite)
            recipe = RECIPES.get(training.recipe)
            params = recipe.params_model.model_validate(training.recipe_params)
            epochs = int(getattr(params, "epochs", 1))
            per_image = passes_per_image(params)
            n_train = len(data.split("train"))
            label = f"train {spec.row_name}" + (f" ({member.row_name})" if len(trained) > 1 else "")
            work.append(
                PlannedWork(
                    "train",
                    label,
                    spec.row_name,
                    checkpoint_path(training, folder).is_file(),
                    train_images=epochs * n_train * per_image,
                )
            )
    for job in expand_jobs(suite, device.type):
        resolved = job.evaluation.resolved
        subset = getattr(resolved.params, "n_examples", None)
        n = len(evaluation_set) if subset is None else min(subset, len(evaluation_set))
        forward, grad = resolved.cls.planned_passes(resolved.params, n)
        times = members_of.get(job.model.row_name, 1)
        work.append(
            PlannedWork(
                "evaluate",
                job.label,
                job.model.row_name,
                cache.has(job.key),
                forward_images=forward * times,
                grad_images=grad * times,
            )
        )
    if measure:
        _estimate(work, specs, suite, info, device, log)
    return work


def passes_per_image(params: Any) -> int:
    """Forward-backward passes a recipe spends per training image and epoch, from the
    recipe parameters that multiply them: ``attack_steps`` (PGD-AT, TRADES: one input
    gradient each) and SAM's ``rho`` (a second forward-backward when positive)."""
    passes = 1 + int(getattr(params, "attack_steps", 0) or 0)
    if float(getattr(params, "rho", 0) or 0) > 0:
        passes += 1
    return passes


def _estimate(
    work: list[PlannedWork],
    specs: dict[str, ModelSpec],
    suite: Suite,
    info: DataInfo,
    device: torch.device,
    log: Callable[[str], None],
) -> None:
    rates: dict[str, Throughput] = {}
    for item in work:
        if item.cached:
            continue
        spec = specs[item.row]
        arch = _architecture(spec)
        if arch not in rates:
            log(f"  timing {spec.model} on {device} (a few batches)")
            train_batch = 128
            if spec.training is not None:
                train_batch = int(spec.training.params.get("batch_size", 128))
            rates[arch] = measure_throughput(spec, info, device, suite.batch_size, train_batch)
        rate = rates[arch]
        item.seconds = (
            item.forward_images / rate.forward
            + item.grad_images / rate.input_grad
            + item.train_images / rate.train
        )


def plan_lines(work: list[PlannedWork]) -> list[str]:
    """The plan as printed: one line per job left to run, then totals per row and overall."""
    todo = [w for w in work if not w.cached]
    lines = [
        f"{len(todo)} of {len(work)} job(s) to run "
        f"({sum(w.kind == 'train' for w in todo)} training(s)); "
        f"{len(work) - len(todo)} cached"
    ]
    for item in todo:
        passes = []
        if item.train_images:
            passes.append(f"{item.train_images:,} training images")
        if item.forward_images:
            passes.append(f"{item.forward_images:,} forward")
        if item.grad_images:
            passes.append(f"{item.grad_images:,} gradient")
        when = "" if item.seconds is None else f"  ~{format_duration(item.seconds)}"
        bound = " (at most)" if item.grad_images else ""
        lines.append(f"  {item.label}: {', '.join(passes) or 'nothing'}{bound}{when}")
    if todo and all(w.seconds is not None for w in todo):
        rows: dict[str, float] = {}
        for item in todo:
            rows[item.row] = rows.get(item.row, 0.0) + (item.seconds or 0.0)
        lines.append(
            "per model: "
            + ", ".join(f"{row} ~{format_duration(s)}" for row, s in sorted(rows.items()))
        )
        total = sum(rows.values())
        lines.append(
            f"total: ~{format_duration(total)} on this device (attack passes are upper bounds: "
            "examples broken early cost less)"
        )
    return lines
