"""A model that emits NaN/inf anywhere -- on large batches, on some examples, on perturbed
inputs -- stops the job with one line; it never gets an accuracy or an attack "success"."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvalContext

CPU = torch.device("cpu")


class NanWhen(nn.Module):
    """Wraps a model and poisons its logits where ``condition(x)`` (per example) holds."""

    def __init__(self, inner: nn.Module, condition) -> None:
        super().__init__()
        self.inner, self.condition = inner, condition

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        mask = self.condition(x)
        return torch.where(mask[:, None], torch.full_like(out, float("nan")), out)


def nan_off(model: nn.Module, clean: torch.Tensor) -> NanWhen:
    """``model``, finite exactly on the images ``clean`` and NaN on anything an attack moved."""
    return NanWhen(model, lambda x: ~(x[:, None] == clean[None]).flatten(2).all(2).any(1))


def run(kind: str, model: nn.Module, data, **params):
    entry = EVALUATIONS.get(kind)
    evaluation = entry.obj(entry.params_model.model_validate(params))
    return evaluation.run(model, data, EvalContext.for_model(model, CPU, 64, 0, False))


def test_nan_on_large_batches_fails_the_clean_evaluation(trained):
    model, test = trained
    poisoned = NanWhen(model, lambda x: torch.full((len(x),), len(x) > 2))
    with pytest.raises(BenchmarkError, match="non-finite logits") as info:
        run("clean", poisoned, test)
    assert "\n" not in str(info.value)


def test_nan_on_some_examples_fails_the_clean_evaluation(trained):
    model, test = trained
    target = test.x[7]
    poisoned = NanWhen(model, lambda x: (x == target).flatten(1).all(1))
    with pytest.raises(BenchmarkError, match=r"for 1 of \d+ input"):
        run("clean", poisoned, test)


def test_nan_on_perturbed_inputs_is_not_an_attack_success(trained):
    model, test = trained
    sub = test.subset(40, 0)
    poisoned = nan_off(model, sub.x)
    with pytest.raises(BenchmarkError, match="non-finite logits"):
        run("pgd", poisoned, sub, norm="Linf", eps=0.1, steps=3)


def test_nan_on_perturbed_inputs_fails_the_sanity_checks(trained):
    model, test = trained
    sub = test.subset(16, 0)
    poisoned = nan_off(model, sub.x)
    with pytest.raises(BenchmarkError, match="sanity: unbounded attack: the model returned"):
        run("sanity", poisoned, sub)
