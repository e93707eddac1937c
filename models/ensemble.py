"""Ensembles that average *probabilities* and still look like a classifier returning logits.

The ensemble prediction is the mean softmax of its members (deep ensembles; PEP Eq. 1; the MC
prediction of the spatial-smoothing paper). Attacks and metrics expect logits, so the wrapper
returns ``log(mean_j softmax(f_j(x)))``: its softmax is exactly the mean probability and its
gradient is the gradient of the ensemble's log-likelihood (what an attack on the ensemble
should follow). It is computed as ``logsumexp_j(log_softmax(f_j(x))) - log m``, which stays
finite where a probability underflows to zero.

Registry integration is a Python API for now: a registered builder cannot load member
checkpoints cleanly (the suite's single weight source per model and the job cache key do not
cover member files), so ``load_ensemble`` builds the members from (key, params, checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.datasets.base import DataInfo
from benchmark.errors import BenchmarkError
from models.checkpoints import load_checkpoint
from models.registry import build_model


class Ensemble(nn.Module):
    """Average the probabilities of ``members`` (each: [0, 1] input -> logits).

    ``randomized`` is inherited: the ensemble is stochastic if any member is.
    """

    # set on the ensembles that post-hoc methods build (PEP: models/posthoc/pep.py)
    sigma: float
    fit_info: dict[str, object]

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) == 0:
            raise BenchmarkError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.randomized = any(bool(getattr(m, "randomized", False)) for m in members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(member(x), dim=1) for member in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member: registered model key, its params and a weights file."""

    model: str
    checkpoint: str | Path
    params: dict[str, Any] = field(default_factory=dict)


def load_ensemble(members: Sequence[MemberSpec], info: DataInfo) -> Ensemble:
    """Build every member with :func:`build_model`, load its checkpoint, and wrap them."""
    built = []
    for spec in members:
        model = build_model(spec.model, spec.params, info)
        load_checkpoint(model, spec.checkpoint)
        built.append(model.eval())
    return Ensemble(built).eval()
