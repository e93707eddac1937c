"""Post-hoc fits that mean nothing are refused, naming the row: fitting data without errors or
seen in training (leakage), and a temperature or PEP sigma at an end of its interval."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.datasets.base import ArrayDataset, DataInfo
from benchmark.errors import BenchmarkError
from models.posthoc import fit_posthoc
from models.posthoc.diagnostics import LEAKAGE_P, LeakageReport
from models.posthoc.pep import PEPParams, bracket_end, golden_section_search

INFO = DataInfo(4, 1, (2, 2), (0.5,), (0.5,))


class ByBrightness(nn.Module):
    """Classifies an image by its mean brightness: class c is brightness (c + 0.5) / 4.
    ``scale`` sets the logits' size, hence the confidence; it never changes a prediction."""

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.register_buffer("centers", torch.tensor([0.125, 0.375, 0.625, 0.875]))
        self.head = nn.Linear(4, 4)  # scale * identity: a layer PEP can perturb
        with torch.no_grad():
            self.head.weight.copy_(scale * torch.eye(4))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(-(x.mean((1, 2, 3))[:, None] - self.centers).abs())


def brightness_data(n: int, wrong: int, seed: int, name: str = "fit") -> ArrayDataset:
    """``n`` images the model above classifies right, except ``wrong`` of them whose labels
    are shifted by one class (errors the model makes on them)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(4, (n,), generator=g)
    level = (y.float() + 0.2 + 0.6 * torch.rand(n, generator=g)) / 4
    x = level[:, None, None, None].expand(n, 1, 2, 2).contiguous()
    labels = y.clone()
    labels[:wrong] = (labels[:wrong] + 1) % 4
    return ArrayDataset("toy", name, x, labels, INFO, torch.arange(n))


def test_a_model_without_errors_on_its_fitting_data_is_refused():
    model = ByBrightness()
    fitting = brightness_data(200, wrong=0, seed=0)
    for method in ("temperature", "pep"):
        with pytest.raises(BenchmarkError, match=r"model 'toy\+x': .*makes no errors") as info:
            fit_posthoc(method, model, fitting, {}, 0, row="toy+x")
        assert "\n" not in str(info.value)
    # without ``row`` (a direct call) the numbers come back unchecked, as before
    assert fit_posthoc("temperature", model, fitting, {}, 0) is not None


@pytest.mark.parametrize(("scale", "wrong", "end"), [(0.01, 5, "lower"), (30.0, 150, "upper")])
def test_a_temperature_at_an_end_of_its_interval_is_refused(scale, wrong, end):
    """Near-uniform logits with few errors want T far below 0.05; confident logits that are
    mostly wrong want T far above 20: both stop at the interval's edge, not at a minimum."""
    model = ByBrightness(scale)
    fitting = brightness_data(200, wrong=wrong, seed=1)
    unchecked = fit_posthoc("temperature", model, fitting, {}, 0)
    assert unchecked.fit_info["at_bound"] == end
    with pytest.raises(BenchmarkError, match=rf"model 'toy\+temperature'.*at the {end} end"):
        fit_posthoc("temperature", model, fitting, {}, 0, row="toy+temperature")


def test_an_interior_temperature_is_served_with_its_fitting_numbers():
    model = ByBrightness(20.0)
    fitting, evaluation = brightness_data(300, 20, seed=2), brightness_data(600, 40, seed=3)
    fitted = fit_posthoc(
        "temperature",
        model,
        fitting,
        {},
        0,
        row="toy+t",
        evaluation=evaluation,
        fitting_name="held-out",
    )
    info = fitted.fit_info
    assert info["at_bound"] is None and 0.05 < info["temperature"] < 20
    assert info["val_nll_after"] <= info["val_nll_before"]
    assert info["fitting_data"]["fit_errors"] == 20 and info["fitting_data"]["eval_n"] == 600


def test_fitting_data_seen_in_training_is_refused_and_held_out_data_is_not():
    """99.5 % on the fitting data vs 92 % on the evaluation data: the akamaster pattern."""
    model = ByBrightness(20.0)
    seen, evaluation = brightness_data(1000, 5, seed=4), brightness_data(1000, 80, seed=5)
    with pytest.raises(BenchmarkError, match=r"model 'rn\+temperature'.*looks seen in training"):
        fit_posthoc("temperature", model, seen, {}, 0, row="rn+temperature", evaluation=evaluation)
    held_out = brightness_data(1000, 75, seed=6)
    fit_posthoc("temperature", model, held_out, {}, 0, row="rn+t", evaluation=evaluation)


def test_leakage_needs_both_significance_and_a_large_gap():
    def report(fit_errors: int, fit_n: int, eval_errors: int, eval_n: int, p: float):
        return LeakageReport(fit_n, fit_errors, 0.1, eval_n, eval_errors, 0.2, p)

    assert report(10, 5000, 830, 10000, 1e-200).leaked
    # significant but a small gap (a large set with a slightly lower error rate)
    assert not report(700, 10000, 800, 10000, LEAKAGE_P / 10).leaked
    # a large gap on a few examples: 0 of 180 against 3 of 360 is sampling noise
    assert not report(0, 180, 3, 360, 0.4).leaked


def test_pep_bracket_ends_follow_the_golden_section_search():
    params = PEPParams(bracket=(0.0, 0.1), iterations=6)
    increasing, _ = golden_section_search(lambda s: s, 0.0, 0.1, 6)
    decreasing, _ = golden_section_search(lambda s: -s, 0.0, 0.1, 6)
    interior, _ = golden_section_search(lambda s: (s - 0.037) ** 2, 0.0, 0.1, 6)
    assert bracket_end(increasing, params) == "lower"
    assert bracket_end(decreasing, params) == "upper"
    assert bracket_end(interior, params) is None


def test_a_pep_sigma_at_the_end_of_its_bracket_is_refused():
    """Sigmas of 1-2 destroy a model: the likelihood falls over the whole bracket, so the
    search ends at its lower end, which is the bracket's edge, not a maximum."""
    model = ByBrightness(5.0)
    fitting = brightness_data(200, wrong=20, seed=7)
    params = {
        "bracket": (1.0, 2.0),
        "iterations": 3,
        "search_members": 2,
        "members": 2,
        "min_out": 1,
    }
    unchecked = fit_posthoc("pep", model, fitting, params, 0)
    assert unchecked.fit_info["at_bound"] == "lower"
    with pytest.raises(BenchmarkError, match=r"model 'toy\+pep'.*sigma .* lower end"):
        fit_posthoc("pep", model, fitting, params, 0, row="toy+pep")


def test_a_holdout_is_removed_from_every_row_and_fits_the_posthoc_rows(tmp_path, write_suite):
    from benchmark.runner import run_suite
    from benchmark.runner.jobs import expand_jobs
    from benchmark.runner.worker import SuiteData
    from benchmark.suite import load_suite
    from tests.conftest import tiny_suite

    suite = tiny_suite(tmp_path)
    suite["dataset"] = {"name": "digits", "split": "test", "holdout": 100}
    suite["models"] = suite["models"][:1]
    # a fixed sigma: an untrained model's temperature runs to its bound (refused, as above)
    suite["models"][0]["posthoc"] = [{"method": "pep", "params": {"sigma": 0.01, "members": 2}}]
    loaded = load_suite(write_suite(suite))
    data = SuiteData(loaded)
    held, evaluated = data.holdout_set(), data.evaluation_set()
    assert (len(held), len(evaluated)) == (100, 260)
    assert not set(held.indices.tolist()) & set(evaluated.indices.tolist())
    name, fitting = data.fitting_set(loaded.models[0].posthoc[0])
    assert torch.equal(fitting.indices, held.indices) and "held-out" in name

    board = run_suite(loaded, progress=False, log=lambda _m: None).leaderboard
    assert board["n_examples"].tolist() == [260, 260]

    def keys(dataset: dict) -> dict[str, str]:
        path = write_suite({**suite, "dataset": dataset}, name="other.yaml")
        return {j.label: j.key for j in expand_jobs(load_suite(path), "cpu")}

    with_holdout = {j.label: j.key for j in expand_jobs(loaded, "cpu")}
    assert set(with_holdout.values()).isdisjoint(keys({"name": "digits", "split": "test"}).values())
    assert set(with_holdout.values()).isdisjoint(
        keys({"name": "digits", "split": "test", "holdout": 100, "holdout_seed": 1}).values()
    )


def test_fit_on_holdout_needs_a_holdout_and_a_holdout_must_leave_examples(
    tmp_path, write_suite, capsys
):
    from benchmark.cli import main
    from tests.conftest import tiny_suite

    suite = tiny_suite(tmp_path)
    suite["models"][0]["posthoc"] = [{"method": "temperature", "fit_on": "holdout"}]
    assert main(["validate", str(write_suite(suite))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cnn+temperature' has fit_on: holdout but dataset.holdout" in err[0]

    suite["dataset"] = {"name": "digits", "split": "test", "holdout": 360}
    assert main(["run", str(write_suite(suite))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "dataset.holdout: 360 is not smaller than the 'test' split (360 examples)"
    )
