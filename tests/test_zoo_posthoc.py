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
from models.posthoc import PEPParams, TemperatureScaled, fit_posthoc, pep_ensemble
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
    ensemble = pep_ensemble(base, sigma=0.0, members=4, seed=0, min_out=1)
    with torch.no_grad():
        reference = base(x)
        for member in ensemble.members:
            for a, b in zip(member.state_dict().values(), base.state_dict().values(), strict=True):
                assert torch.equal(a, b)
            assert torch.equal(member(x), reference)
        assert torch.allclose(ensemble(x).softmax(1), reference.softmax(1), atol=1e-6)


def pep_test_net() -> nn.Module:
    """Conv and dense layers on both sides of the reference's 32-output threshold."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),  # 0: 32 outputs, left alone by the reference CIFAR rule
        nn.BatchNorm2d(32),
        nn.Conv2d(32, 33, 3),  # 2: 33 outputs, perturbed
        nn.BatchNorm2d(33),
        nn.Flatten(),
        nn.Linear(33 * 4 * 4, 40),  # 5: perturbed
        nn.Linear(40, 10),  # 6: 10 outputs, left alone
    ).eval()


def test_pep_perturbs_only_weights_of_layers_with_more_than_32_outputs_and_is_seeded():
    base = pep_test_net()
    assert PEPParams().min_out == 33 and PEPParams().layers == "conv_and_linear"
    assert perturbed_parameter_names(base) == ["2.weight", "5.weight"]
    members = pep_ensemble(base, 0.05, members=3, seed=7).members
    before = base.state_dict()  # parameters and BatchNorm statistics
    for member in members:
        after = member.state_dict()
        for name in before:
            changed = not torch.equal(after[name], before[name])
            assert changed == (name in ("2.weight", "5.weight")), name
        noise = after["2.weight"] - before["2.weight"]
        assert 0.045 < noise.std().item() < 0.055  # additive N(0, 0.05^2) on 9504 weights
        assert abs(noise.mean().item()) < 0.005
    again = pep_ensemble(base, 0.05, members=5, seed=7).members
    assert torch.equal(members[1][2].weight, again[1][2].weight)  # same seed, same member
    assert not torch.equal(members[0][2].weight, members[1][2].weight)
    other = pep_ensemble(base, 0.05, members=1, seed=8).members[0]
    assert not torch.equal(other[2].weight, members[0][2].weight)


def test_pep_layer_options_cover_the_other_reference_scripts():
    base = pep_test_net()
    every_kernel = ["0.weight", "2.weight", "5.weight", "6.weight"]  # MNIST CNN script
    assert perturbed_parameter_names(base, min_out=1) == every_kernel
    assert perturbed_parameter_names(base, 1, "conv") == ["0.weight", "2.weight"]  # ImageNet
    assert perturbed_parameter_names(base, 33, "linear") == ["5.weight"]
    assert perturbed_parameter_names(base, 41) == []
    dumped = PEPParams().model_dump()  # the post-hoc cache key holds these
    assert {"min_out", "layers"} <= dumped.keys() and "dense_min_out_features" not in dumped


def reference_golden_brackets(objective, low: float, high: float, iterations: int) -> list:
    """The brackets [lo, hi] that each iteration of the reference golden_search starts from."""
    phi = (math.sqrt(5) - 1) / 2
    brackets = []
    for _ in range(iterations):
        brackets.append((low, high))
        upper = low + (high - low) * phi
        lower = low + (upper - low) * phi
        if objective(upper) < objective(lower):
            low = lower
        else:
            high = upper
    return brackets


def test_golden_section_search_matches_the_reference_iterations_and_answer():
    for target in (0.0, 0.0123, 0.03, 0.0777, 0.1):
        objective = lambda s, t=target: (s - t) ** 2  # noqa: E731
        best, trace = golden_section_search(objective, 0.0, 0.1, 10)
        assert len(trace) == 11  # two points, then one new point per iteration
        last_low, last_high = reference_golden_brackets(objective, 0.0, 0.1, 10)[-1]
        assert best == (last_low + last_high) / 2  # the bracket before the last update
        assert last_low <= target <= last_high and last_high - last_low == pytest.approx(
            0.1 * 0.618034**9
        )
    # sigmas the reference published for its CIFAR-10 CNNs (Table 2 notebook): midpoints of
    # brackets shrunk 9 times from [0, 0.1]; a search centred on one returns it
    for published in (0.02294902, 0.01950483, 0.02720626, 0.01818927):
        best, _ = golden_section_search(lambda s, p=published: (s - p) ** 2, 0.0, 0.1, 10)
        assert round(best, 8) == published
    # ties keep the lower part of the bracket (reference: update the upper side)
    flat, trace = golden_section_search(lambda s: 1.0, 0.0, 0.1, 10)
    assert flat == pytest.approx(0.1 * 0.618034**9 / 2) and len(trace) == 11
    one, trace = golden_section_search(lambda s: s, 0.0, 0.1, 1)
    assert one == 0.05 and len(trace) == 2  # one iteration: the initial bracket's midpoint


def test_pep_search_on_digits_does_not_lose_validation_likelihood(trained, digits_val):
    every = {"min_out": 1}  # small_cnn width 0.5 has no layer with more than 32 outputs
    pep = fit_posthoc("pep", trained, digits_val, {"members": 10, **every}, seed=0)
    sigma = pep.fit_info["sigma"]
    assert 0 < sigma < 0.1
    assert len(pep.members) == 10 and len(pep.fit_info["search"]) == 11
    assert pep.fit_info["perturbed"] == perturbed_parameter_names(trained, 1)
    nll_zero = validation_nll(trained, digits_val)
    nll_sigma = validation_nll(pep, digits_val)
    assert nll_sigma <= nll_zero
    quick = {"members": 2, "search_members": 2, "iterations": 2, **every}
    first, second = (fit_posthoc("pep", trained, digits_val, quick, seed=0) for _ in range(2))
    assert first.fit_info == second.fit_info  # the search is deterministic given the seed


def test_pep_on_a_model_with_nothing_to_perturb_fails_the_search_and_warns(digits_val):
    model = small(10)  # small_cnn width 0.25: 8 and 16 channels, 10 outputs
    assert perturbed_parameter_names(model) == []
    with pytest.raises(BenchmarkError, match=r"perturbs no weights.*min_out"):
        fit_posthoc("pep", model, digits_val, {"members": 2, "search_members": 2})
    with pytest.warns(UserWarning, match="every member equals the model"):
        fixed = fit_posthoc("pep", model, digits_val, {"sigma": 0.05, "members": 2})
    assert fixed.fit_info["perturbed"] == []


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
