"""Sanity checks flag broken evaluation setups, and the runner flags models whose state
changes during an evaluation."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.evaluations import (
    EVALUATIONS,
    EvalContext,
    Evaluation,
    EvaluationResult,
    register_evaluation,
)
from benchmark.evaluations.clean import CleanEvaluation

CPU = torch.device("cpu")


def run_sanity(model, data):
    entry = EVALUATIONS.get("sanity")
    params = entry.params_model.model_validate({"n_examples": 60, "unbounded_steps": 50})
    return entry.obj(params).run(
        model.eval(), data, EvalContext.for_model(model, CPU, 64, 0, False)
    )


class Softmaxed(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).softmax(1)


class SecretlyNoisy(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x + 0.05 * torch.randn_like(x))


class Quantized(nn.Module):
    """Rounds its input to 0/1: gradients are zero everywhere (gradient masking)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x))


def test_a_healthy_model_has_no_flags(trained):
    model, data = trained
    result = run_sanity(model, data)
    assert result.extras["flags"] == [], result.extras["checks"]
    assert result.metrics["unbounded_acc_pct"] <= 1.0


def test_probability_outputs_are_flagged(trained):
    model, data = trained
    assert "outputs_probabilities" in run_sanity(Softmaxed(model), data).extras["flags"]


def test_undeclared_randomness_is_flagged(trained):
    model, data = trained
    assert "undeclared_randomness" in run_sanity(SecretlyNoisy(model), data).extras["flags"]
    declared = SecretlyNoisy(model)
    declared.randomized = True
    assert "undeclared_randomness" not in run_sanity(declared, data).extras["flags"]


def test_masked_gradients_are_flagged(trained):
    model, data = trained
    result = run_sanity(Quantized(model), data)
    assert "degenerate_gradients" in result.extras["flags"]
    assert result.extras["checks"]["degenerate_gradients"]["zero_pct"] > 90


@register_evaluation("test_train_mode_leak", "deliberately broken: forwards in train mode")
class _TrainModeLeak(Evaluation):
    def run(self, model, data, ctx) -> EvaluationResult:
        model.train()
        model(data.x[:32].to(ctx.device))  # updates BatchNorm running statistics
        return CleanEvaluation(CleanEvaluation.Params()).run(model.eval(), data, ctx)


def test_state_change_during_evaluation_is_flagged_and_undone(tmp_path, write_suite):
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite
    from tests.conftest import tiny_suite

    suite = tiny_suite(tmp_path)
    suite["evaluations"] = [{"type": "test_train_mode_leak"}, {"type": "clean"}]
    board = run_suite(
        load_suite(write_suite(suite)), progress=False, log=lambda _m: None
    ).leaderboard
    assert (board["flags"] == "state_changed").all()

    clean_only = tiny_suite(tmp_path / "b", output_dir=str(tmp_path / "b" / "run"))
    clean_only["evaluations"] = [{"type": "clean"}]
    reference = run_suite(
        load_suite(write_suite(clean_only, "b.yaml")), progress=False, log=lambda _m: None
    )
    # the leaking job's damage was undone: the next job sees the original weights
    assert board["clean_acc_pct"].tolist() == reference.leaderboard["clean_acc_pct"].tolist()
    assert (reference.leaderboard["flags"] == "").all()


DRIFTING_PLUGIN = """
import torch
from torch import nn
from models import register_model


class Drifts(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3)

    def forward(self, x):
        with torch.no_grad():
            self.conv.weight.mul_(1.5)  # every forward moves a weight, in place
        return self.conv(x).amax((2, 3))


@register_model("test_drifting_forward", "forward scales its own weights")
def drifting(num_classes, in_channels):
    return Drifts(num_classes, in_channels)
"""


def test_a_forward_that_changes_weights_in_place_is_flagged_and_undone(tmp_path, write_suite):
    from benchmark.runner import ResultCache, expand_jobs, run_suite
    from benchmark.suite import load_suite
    from tests.conftest import tiny_suite

    plugin = tmp_path / "drifting_plugin.py"
    plugin.write_text(DRIFTING_PLUGIN)
    doc = tiny_suite(tmp_path, plugins=[str(plugin)])
    doc["models"] = [
        {"name": "drifts", "model": "test_drifting_forward", "random_init": True},
        doc["models"][0],
    ]
    doc["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 0}},
        {"type": "clean", "name": "again", "params": {"bootstrap": 0, "n_bins": 10}},
    ]
    suite = load_suite(write_suite(doc))
    board = run_suite(suite, progress=False, log=lambda _m: None).leaderboard.set_index("model")
    assert board.loc["drifts", "flags"] == "state_changed"
    assert board.loc["cnn", "flags"] == ""
    cache = ResultCache(suite.cache_root)
    for job in (j for j in expand_jobs(suite, "cpu") if j.row_name == "drifts"):
        changed = cache.load_summary(job.key)["extras"]["state_changed"]
        assert [name for name in changed if name.endswith("conv.weight")], changed
    # restored after each job: the second evaluation starts from the same weights
    assert board.loc["drifts", "clean_nll"] == board.loc["drifts", "again_nll"]
