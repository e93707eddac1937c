"""``ar_adals`` and ``adals``: adversarial-robustness-based adaptive label smoothing
(Qin et al. 2021, "Improving Calibration through the Relationship with Adversarial
Robustness", Algorithm 1).

Why: the least adversarially robust examples are the most over-confident, so they should get
softer labels. Every training and validation example gets a robustness score (the L2 norm of
its minimal adversarial perturbation, CW-L2, on a *vanilla* model of the same architecture:
the paper's "pre-computed" option); both splits are cut into R equal-size strata from least
to most robust (:func:`benchmark.metrics.robustness.robustness_bins`). Stratum r trains on
soft labels whose true-class mass p_r starts at 1 and, after every epoch, follows the
validation calibration gap of the same stratum:

    p_r <- clip(p_r - alpha * (conf(S_val_r) - acc(S_val_r)), (1/Z, 1])
    eps_r = (1 - p_r) * Z / (Z - 1);   soft label = onehot * (1 - eps_r) + eps_r / Z

(Eqs. 1-4; conf = mean max-softmax probability, acc = accuracy, both in eval mode). R = 10,
alpha = 0.005. ``adals`` is the R = 1 case (no robustness needed), alpha = 0.05.

The vanilla model is trained with the ``standard`` recipe through the engine's checkpoint
cache (by default with this recipe's own optimization parameters, so a suite's vanilla row
with the same parameters shares the checkpoint). CW-L2 defaults are the paper's (App. A.4:
3 binary-search steps, 500 iterations, lr 0.005, with the cleverhans code it used, whose
initial constant is 1e-2); DDN is the faster option. Any per-example
score can be used instead: ``scores_file`` (an ``.npz`` with arrays ``train`` and ``val``,
ordered as the splits, plus its SHA-256 so the cache key follows the content) or the
``scores=`` argument of :func:`train_ar_adals`. Robustness is relative to the vanilla model's
prediction (the paper's smallest delta with f(x + delta) != f(x)), so misclassified examples
are attacked too; ``robustness_relative_to: label`` gives them score 0 unattacked (the older
convention). Adversarials are re-verified (:mod:`benchmark.attacks.distances`), as in the
``robustness_ranking`` evaluation; an unverified one scores +inf (most robust stratum).

Deviation: the loss is the batch mean of the per-example soft cross-entropy; the paper writes
(1/R) sum_r L_r, which is the same in expectation because the strata have equal size.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from benchmark.attacks import ATTACKS, MinimalNormAttack
from benchmark.attacks.distances import RelativeTo, verified_minimal_distances
from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.inference import predict_probs
from benchmark.metrics.robustness import robustness_bins
from benchmark.utils import file_sha256
from models.training.engine import train_or_load
from models.training.label_smoothing import smooth_targets, soft_cross_entropy
from models.training.loop import BatchState, LoopParams, TrainingLoop, loop_params
from models.training.recipes import TrainContext, register_recipe

Scores = tuple[np.ndarray, np.ndarray]  # (train, val), one score per example, larger = robust


class AdaLSParams(LoopParams):
    alpha: float = Field(0.05, gt=0, description="learning rate of the soft labels")


class ArAdaLSParams(LoopParams):
    alpha: float = Field(0.005, gt=0, description="learning rate of the soft labels")
    strata: int = Field(10, ge=1, description="R equal-size robustness strata")
    attack: Literal["cw", "ddn"] = "cw"
    cw_binary_search_steps: int = Field(3, ge=1)
    cw_steps: int = Field(500, ge=1, description="CW iterations per binary-search step")
    cw_lr: float = Field(0.005, gt=0)
    cw_initial_const: float = Field(1e-2, gt=0, description="cleverhans' default")
    ddn_steps: int = Field(100, ge=1)
    attack_batch_size: int = Field(500, ge=1)
    robustness_relative_to: RelativeTo = Field(
        "prediction", description="attack off the predicted class, or (label) only correct ones"
    )
    vanilla: dict[str, Any] | None = Field(
        None, description="standard-recipe params of the ranking model (default: this recipe's)"
    )
    scores_file: str | None = Field(None, description=".npz with 'train' and 'val' scores")
    scores_sha256: str | None = None

    @model_validator(mode="after")
    def _file_with_hash(self) -> ArAdaLSParams:
        if (self.scores_file is None) != (self.scores_sha256 is None):
            raise ValueError("give scores_sha256 exactly when scores_file is given")
        return self


def ranking_attack(params: ArAdaLSParams) -> MinimalNormAttack:
    """The configured CW-L2 or DDN attack (its other parameters at their defaults)."""
    given: dict[str, Any] = (
        {
            "binary_search_steps": params.cw_binary_search_steps,
            "steps": params.cw_steps,
            "lr": params.cw_lr,
            "initial_const": params.cw_initial_const,
        }
        if params.attack == "cw"
        else {"steps": params.ddn_steps}
    )
    entry = ATTACKS.get(params.attack)
    return entry.obj(entry.params_model.model_validate(given))  # type: ignore[return-value]


def example_robustness(
    model: nn.Module,
    data: ArrayDataset,
    params: ArAdaLSParams,
    device: torch.device,
    progress: bool,
) -> np.ndarray:
    """Minimal L2 adversarial distance per example (inf if none verified; with
    ``robustness_relative_to: label``, 0 if misclassified)."""
    model.eval()
    distances, _, _ = verified_minimal_distances(
        model,
        data.x,
        data.y,
        ranking_attack(params),
        params.robustness_relative_to,
        device,
        params.attack_batch_size,
        progress,
        desc=f"{params.attack}-L2 ranking",
    )
    return distances


def load_scores(path: str, sha256: str, train: ArrayDataset, val: ArrayDataset) -> Scores:
    if not Path(path).is_file():
        raise BenchmarkError(f"ar_adals: scores_file not found: {path}")
    if file_sha256(path) != sha256:
        raise BenchmarkError(f"ar_adals: {path}: SHA-256 differs from scores_sha256")
    with np.load(path) as archive:
        if not {"train", "val"} <= set(archive.files):
            raise BenchmarkError(f"ar_adals: {path}: needs arrays 'train' and 'val'")
        scores = (np.asarray(archive["train"], float), np.asarray(archive["val"], float))
    for name, values, data in (("train", scores[0], train), ("val", scores[1], val)):
        if values.shape != (len(data),):
            raise BenchmarkError(
                f"ar_adals: {path}: '{name}' has shape {values.shape}, expected ({len(data)},)"
            )
    return scores


class AdaptiveLabelSmoothingLoop(TrainingLoop):
    """Per-stratum soft labels updated from the validation calibration gap (Algorithm 1)."""

    params: AdaLSParams | ArAdaLSParams

    def __init__(
        self,
        params: AdaLSParams | ArAdaLSParams,
        ctx: TrainContext,
        n_strata: int,
        scores: Scores | None = None,
    ) -> None:
        super().__init__(params, ctx)
        self.n_strata = n_strata
        self.scores = scores
        self.p = torch.ones(n_strata, dtype=torch.float64)

    def compute_scores(self, train: ArrayDataset, val: ArrayDataset) -> Scores:
        params = self.params
        assert isinstance(params, ArAdaLSParams)
        if params.scores_file is not None:
            assert params.scores_sha256 is not None
            return load_scores(params.scores_file, params.scores_sha256, train, val)
        job, folder = self.ctx.job, self.ctx.checkpoint_dir
        if job is None or folder is None:
            raise BenchmarkError(
                "ar_adals: no robustness scores: run it through the engine, set scores_file, "
                "or pass scores="
            )
        vanilla_params = params.vanilla if params.vanilla is not None else loop_params(params)
        # the same model, data, seed, normalization, precision and warm start; only the
        # recipe differs
        vanilla_job = replace(job, recipe="standard", recipe_params=vanilla_params)
        vanilla, _ = train_or_load(
            vanilla_job, train, val, folder, self.ctx.device, self.ctx.progress
        )
        return tuple(  # type: ignore[return-value]
            example_robustness(vanilla, data, params, self.ctx.device, self.ctx.progress)
            for data in (train, val)
        )

    def setup(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        resumed: dict[str, Any] | None,
    ) -> None:
        if val is None or not len(val):
            raise BenchmarkError(
                "adaptive label smoothing needs the validation split (training.validation: true)"
            )
        self.num_classes = train.info.num_classes
        if self.n_strata == 1:
            self.scores = (np.zeros(len(train)), np.zeros(len(val)))
        elif resumed and "scores_train" in resumed:
            self.scores = (resumed["scores_train"].numpy(), resumed["scores_val"].numpy())
        elif self.scores is None:
            self.scores = self.compute_scores(train, val)
        train_scores, val_scores = self.scores
        if len(train_scores) != len(train) or len(val_scores) != len(val):
            raise BenchmarkError(
                f"robustness scores have {len(train_scores)}/{len(val_scores)} entries for "
                f"{len(train)}/{len(val)} train/val examples"
            )
        self.train_strata = torch.from_numpy(robustness_bins(train_scores, self.n_strata))
        self.val_strata = torch.from_numpy(robustness_bins(val_scores, self.n_strata))

    def targets(self, y: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Soft labels of the training examples at ``indices`` (positions in the split)."""
        z = self.num_classes
        p = self.p[self.train_strata[indices]]
        eps = (1 - p) * z / (z - 1)
        return smooth_targets(y, eps.float().to(y.device), z)

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: BatchState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return soft_cross_entropy(logits, self.targets(y, state.indices)), logits

    def end_epoch(
        self,
        model: nn.Module,
        train: ArrayDataset,
        val: ArrayDataset | None,
        record: dict[str, Any],
    ) -> None:
        assert val is not None
        probs = torch.from_numpy(
            predict_probs(model, val.x, batch_size=512, device=self.ctx.device)
        )
        confidence, prediction = probs.max(1)
        correct = (prediction == val.y).double()
        conf = torch.zeros(self.n_strata, dtype=torch.float64)
        acc = torch.zeros(self.n_strata, dtype=torch.float64)
        for r in range(self.n_strata):
            members = self.val_strata == r
            if members.any():
                conf[r], acc[r] = confidence[members].mean(), correct[members].mean()
        self.update(conf, acc)
        record["val_conf_r"] = conf.tolist()
        record["val_acc_r"] = acc.tolist()
        record["soft_label_r"] = self.p.tolist()

    def update(self, conf: torch.Tensor, acc: torch.Tensor) -> None:
        """Eq. 3 and the clip to (1/Z, 1]: lower the true-class mass of strata whose
        validation confidence exceeds their accuracy, raise it where it falls short."""
        lower = 1.0 / self.num_classes + 1e-6  # the open end: eps_r stays below 1
        self.p = (self.p - self.params.alpha * (conf - acc)).clamp(lower, 1.0)

    def state_dict(self) -> dict[str, Any]:
        assert self.scores is not None
        return {
            "p": self.p,
            "scores_train": torch.as_tensor(self.scores[0]),
            "scores_val": torch.as_tensor(self.scores[1]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = state["p"].clone()


@register_recipe(
    "ar_adals",
    "AR-AdaLS: per-robustness-stratum adaptive label smoothing (CW-L2 ranking, R 10)",
    ArAdaLSParams,
)
def train_ar_adals(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: ArAdaLSParams,
    ctx: TrainContext,
    scores: Scores | None = None,
) -> dict[str, Any]:
    """``scores``: optional (train, val) per-example robustness, larger = more robust."""
    return AdaptiveLabelSmoothingLoop(params, ctx, params.strata, scores).run(model, train, val)


@register_recipe("adals", "AdaLS: adaptive label smoothing, one stratum (alpha 0.05)", AdaLSParams)
def train_adals(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    params: AdaLSParams,
    ctx: TrainContext,
) -> dict[str, Any]:
    return AdaptiveLabelSmoothingLoop(params, ctx, 1).run(model, train, val)
