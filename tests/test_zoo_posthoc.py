"""Ensembles, PEP and temperature scaling: exact identities, reproducibility, and that the
fitted post-hoc models do not lose validation likelihood on the offline digits data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmark.datasets import load_dataset
from benchmark.datasets.digits import DIGITS_INFO
from benchmark.errors import BenchmarkError
from models import Ensemble, MemberSpec, build_model, load_ensemble, save_checkpoint
from models.layers import MCDropout
from models.posthoc import TemperatureScaled, fit_posthoc, pep_ensemble
from models.posthoc.pep import golden_section_search, perturbed_parameter_names, validation_nll
from models.training import TrainingJob, train_or_load

RECIPE = {
    "epochs": 3,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 0.01,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup_epochs": 0,
    "augment": "crop",
    "crop_padding": 1,
}


@pytest.fixture(scope="module")
def digits_val():
    return load_dataset("digits", "val")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_val):
    """small_cnn (width 0.5) trained 3 epochs on digits with the standard recipe."""
    job = TrainingJob("small_cnn", {"width": 0.5}, "standard", RECIPE, {"dataset": "digits"}, 11)
    model, _ = train_or_load(
        job,
        load_dataset("digits", "train"),
        digits_val,
        tmp_path_factory.mktemp("ckpt"),
        torch.device("cpu"),
        progress=False,
    )
    return model.eval()


def small(seed: int, key: str = "small_cnn") -> nn.Module:
    torch.manual_seed(seed)
    return build_model(key, {"width": 0.25}, DIGITS_INFO).eval()


def test_ensemble_returns_log_of_mean_probability():
    members = [small(0), small(1), small(2)]
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        out = Ensemble(members)(x)
        mean_prob = torch.stack([m(x).softmax(1) for m in members]).mean(0)
        assert torch.allclose(out.exp(), mean_prob, atol=1e-6)
        assert torch.allclose(out.softmax(1), mean_prob, atol=1e-6)  # logits for metrics
        assert torch.allclose(Ensemble(members[:1])(x), members[0](x).log_softmax(1))


def test_ensemble_is_stable_for_extreme_logits_and_differentiable():
    class Fixed(nn.Module):
        def __init__(self, logits: list[float]) -> None:
            super().__init__()
            self.logits = nn.Parameter(torch.tensor([logits]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logits.expand(len(x), -1) * (1 + 0 * x.sum())

    ensemble = Ensemble([Fixed([1e4, 0.0, -1e4]), Fixed([-1e4, 1e4, 0.0])])
    out = ensemble(torch.zeros(2, 1))
    assert torch.isfinite(out).all()  # log of mean of exp(-1e4)-sized probabilities
    assert torch.allclose(out[0, :2], torch.full((2,), -math.log(2)), atol=1e-6)
    out[:, 2].sum().backward()
    assert all(torch.isfinite(m.logits.grad).all() for m in ensemble.members)


def test_ensemble_propagates_randomized_and_rejects_empty():
    deterministic, stochastic = small(0), small(1, "mcdo_resnet20")
    assert not Ensemble([deterministic]).randomized
    assert Ensemble([deterministic, stochastic]).randomized
    with pytest.raises(BenchmarkError, match="at least one member"):
        Ensemble([])


def test_load_ensemble_from_checkpoints(tmp_path):
    originals = [small(3), small(4)]
    specs = []
    for index, model in enumerate(originals):
        path = tmp_path / f"m{index}.pt"
        save_checkpoint(model, path)
        specs.append(MemberSpec("small_cnn", path, {"width": 0.25}))
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(load_ensemble(specs, DIGITS_INFO)(x), Ensemble(originals)(x))


def test_pep_sigma_zero_reproduces_the_base_model_exactly():
    base = small(5)
    x = torch.rand(6, 1, 8, 8)
    ensemble = pep_ensemble(base, sigma=0.0, members=4, seed=0)
    with torch.no_grad():
        reference = base(x)
        for member in ensemble.members:
            for a, b in zip(member.state_dict().values(), base.state_dict().values(), strict=True):
                assert torch.equal(a, b)
            assert torch.equal(member(x), reference)
        assert torch.allclose(ensemble(x).softmax(1), reference.softmax(1), atol=1e-6)


def test_pep_perturbs_conv_and_large_dense_weights_only_and_is_seeded():
    base = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 40), nn.Linear(40, 10)
    ).eval()
    assert perturbed_parameter_names(base) == ["0.weight", "3.weight"]
    members = pep_ensemble(base, 0.05, members=3, seed=7).members
    before = base.state_dict()
    for member in members:
        after = member.state_dict()
        for name in before:
            changed = not torch.equal(after[name], before[name])
            assert changed == (name in ("0.weight", "3.weight")), name
        noise = after["0.weight"] - before["0.weight"]
        assert 0.02 < noise.std().item() < 0.08  # sigma 0.05 on 36 weights
    again = pep_ensemble(base, 0.05, members=5, seed=7).members
    assert torch.equal(members[1][0].weight, again[1][0].weight)  # same seed, same member
    assert not torch.equal(members[0][0].weight, members[1][0].weight)
    other = pep_ensemble(base, 0.05, members=1, seed=8).members[0]
    assert not torch.equal(other[0].weight, members[0][0].weight)


def test_golden_section_search_finds_the_minimum():
    best, trace = golden_section_search(lambda s: (s - 0.03) ** 2, 0.0, 0.1, 10)
    assert abs(best - 0.03) < 0.1 * 0.618**10
    assert len(trace) == 12  # two initial points, then one evaluation per iteration


def test_pep_search_on_digits_does_not_lose_validation_likelihood(trained, digits_val):
    pep = fit_posthoc("pep", trained, digits_val, {"members": 10}, seed=0)
    sigma = pep.fit_info["sigma"]
    assert 0 < sigma < 0.1
    assert len(pep.members) == 10 and len(pep.fit_info["search"]) == 12
    nll_zero = validation_nll(trained, digits_val)
    nll_sigma = validation_nll(pep, digits_val)
    assert nll_sigma <= nll_zero
    quick = {"members": 2, "search_members": 2, "iterations": 2}
    first, second = (fit_posthoc("pep", trained, digits_val, quick, seed=0) for _ in range(2))
    assert first.fit_info == second.fit_info  # the search is deterministic given the seed


def test_temperature_scaling_never_increases_validation_nll(trained, digits_val):
    overconfident = TemperatureScaled(trained, 0.1)
    for model in (trained, overconfident, small(6)):
        scaled = fit_posthoc("temperature", model, digits_val, {}, seed=0)
        before, after = validation_nll(model, digits_val), validation_nll(scaled, digits_val)
        assert after <= before + 1e-9
        assert after == pytest.approx(scaled.fit_info["val_nll_after"], abs=1e-5)
        with torch.no_grad():
            x = digits_val.x[:50]
            assert torch.equal(scaled(x).argmax(1), model(x).argmax(1))
    fitted = fit_posthoc("temperature", overconfident, digits_val, {}, seed=0)
    assert fitted.fit_info["temperature"] > 1.5  # undoes the sharpening


def test_posthoc_wrappers_propagate_randomized_and_validate_params(digits_val):
    stochastic = small(7, "mcdo_resnet20")
    assert fit_posthoc("temperature", stochastic, digits_val, {}, seed=0).randomized
    assert fit_posthoc("pep", stochastic, digits_val, {"sigma": 0.01, "members": 2}).randomized
    assert not fit_posthoc("pep", small(8), digits_val, {"sigma": 0.0, "members": 1}).randomized
    assert any(isinstance(m, MCDropout) for m in stochastic.modules())
    for method, params in [("pep", {"sigma": -1}), ("pep", {"bracket": (0.1, 0.0)})]:
        with pytest.raises(BenchmarkError) as info:
            fit_posthoc(method, small(9), digits_val, params)
        assert "\n" not in str(info.value) and method in str(info.value)
    with pytest.raises(BenchmarkError, match="unknown post-hoc method"):
        fit_posthoc("dropout", small(9), digits_val, {})
