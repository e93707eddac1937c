"""Consistency on perturbation sequences (spatial-smoothing Eq. 37-38): the metrics by hand,
the generated sequences, and the evaluation on a trained digits model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.corruptions.sequences import perturbation_sequence
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.metrics.consistency import (
    consistency,
    cross_entropy_consistency,
    kl_consistency,
)

CPU = torch.device("cpu")


def test_metrics_follow_eq_37_and_38():
    frames = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])[:, None, :]  # 4 x 1 x 2
    assert consistency(frames)[0] == pytest.approx(2 / 3)  # 0 0 1 1: two of three pairs agree
    expected = -np.mean([(frames[i, 0] * np.log(frames[i + 1, 0])).sum() for i in range(3)])
    assert cross_entropy_consistency(frames)[0] == pytest.approx(expected)
    entropy = -np.mean([(frames[i, 0] * np.log(frames[i, 0])).sum() for i in range(3)])
    assert kl_consistency(frames)[0] == pytest.approx(expected - entropy)
    constant = np.repeat(np.array([[[0.6, 0.4]]]), 5, axis=0)
    assert consistency(constant)[0] == 1.0 and kl_consistency(constant)[0] == pytest.approx(0)
    assert cross_entropy_consistency(constant)[0] == pytest.approx(
        -(0.6 * np.log(0.6) + 0.4 * np.log(0.4))
    )


def test_translate_frames_are_shifts_of_the_image():
    x = torch.rand(6, 3, 12, 12)
    frames = perturbation_sequence(x, "translate", 5, torch.Generator().manual_seed(0))
    assert frames.shape == (5, 6, 3, 12, 12) and torch.equal(frames[0], x)
    for i in range(6):
        k = 3
        shifted = [
            torch.equal(frames[k, i, :, :, : 12 - k], x[i, :, :, k:]),  # content moved left
            torch.equal(frames[k, i, :, :, k:], x[i, :, :, : 12 - k]),
            torch.equal(frames[k, i, :, : 12 - k], x[i, :, k:]),
            torch.equal(frames[k, i, :, k:], x[i, :, : 12 - k]),
        ]
        assert sum(shifted) == 1, f"image {i}: frame {k} is not a {k}-pixel axis shift"
    again = perturbation_sequence(x, "translate", 5, torch.Generator().manual_seed(0))
    assert torch.equal(frames, again)


def test_noise_frames_redraw_the_noise_at_one_strength():
    x = torch.full((200, 1, 8, 8), 0.5)
    frames = perturbation_sequence(x, "gaussian_noise", 4, torch.Generator().manual_seed(1), 0.05)
    assert torch.equal(frames[0], x)
    for k in (1, 2, 3):
        assert (frames[k] - x).std().item() == pytest.approx(0.05, rel=0.05)
    assert not torch.equal(frames[1], frames[2])


def run(model, data, **params):
    entry = EVALUATIONS.get("consistency")
    evaluation = entry.obj(entry.params_model.model_validate(params))
    return evaluation.run(model, data, EvalContext.for_model(model, CPU, 256, 0, False))


class Constant(nn.Module):
    def forward(self, x):
        return torch.tensor([2.0, 1.0, 0.0]).expand(len(x), 3)


def test_evaluation_on_a_trained_model_and_on_a_constant_one(trained):
    model, data = trained
    shifted = run(model, data, frames=4)
    noisy = run(model, data, perturbation="gaussian_noise", frames=4, noise_std=0.02)
    for result in (shifted, noisy):
        assert 0 <= result.metrics["consistency_pct"] <= 100
        assert result.metrics["cec"] >= result.metrics["cec_kl"] >= 0
        assert len(result.records) == len(data)
    # small noise barely moves a trained CNN; 3-pixel shifts of 8x8 digits move it more
    assert noisy.metrics["consistency_pct"] > shifted.metrics["consistency_pct"]
    assert noisy.metrics["consistency_pct"] > 95
    flat = run(Constant(), data, frames=4)
    assert flat.metrics["consistency_pct"] == 100 and flat.metrics["cec_kl"] == pytest.approx(0)
    assert run(model, data, frames=4).metrics == shifted.metrics  # seeded sequences


def test_noise_std_is_refused_for_shifts():
    with pytest.raises(ValueError, match="noise_std applies"):
        EVALUATIONS.get("consistency").params_model.model_validate({"noise_std": 0.1})
