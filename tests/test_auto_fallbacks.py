"""The suite's automatic fallback step: per threat model of its attack evaluations, an
``adaptive`` step (no white-box attack of its own) runs the fallbacks on rows whose
indicators fire, and the headline's per-example worst case turns a masked model's faked
number into what the fallbacks find; honest rows pay for the indicators only."""

from __future__ import annotations

import math

import pytest
import yaml

from benchmark.runner import run_suite
from benchmark.suite import load_suite
from benchmark.suite.loader import SuiteError, import_plugins
from tests.conftest import tiny_suite

PLUGIN = """
from torch import nn
from models import register_model
from models.small_cnn import small_cnn


class Decoy(nn.Module):
    '''The trained network's logits, detached, plus a zero-valued path whose gradient is
    useless: PGD reports about the clean accuracy.'''

    def __init__(self, num_classes, in_channels, width=0.5):
        super().__init__()
        self.net = small_cnn(num_classes, in_channels, width=width)
        self.decoy = nn.Linear(64 * in_channels, num_classes, bias=False)

    def forward(self, x):
        term = self.decoy(x.flatten(1))
        return self.net(x).detach() + (term - term.detach())


register_model("decoy_cnn", "a trained CNN behind a decoy gradient")(
    lambda num_classes, in_channels, width=0.5: Decoy(num_classes, in_channels, width)
)
"""


@pytest.fixture(scope="module")
def decoy_run(tmp_path_factory, trained):
    from benchmark.datasets import load_dataset
    from models import build_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("fallbacks")
    (tmp / "decoy_plugin.py").write_text(PLUGIN)
    model, _ = trained
    save_checkpoint(model, tmp / "cnn.pt")
    import_plugins([str(tmp / "decoy_plugin.py")], "test")  # once: the suite reuses it
    decoy = build_model("decoy_cnn", {"width": 0.5}, load_dataset("digits", "test").info)
    decoy.backbone.net.load_state_dict(model.backbone.state_dict())
    save_checkpoint(decoy, tmp / "decoy.pt")
    cheap = {
        "scale_invariant": {"type": "pgd", "params": {"steps": 10, "loss": "dlr"}},
        "decision_based": {"type": "hopskipjump", "params": {"steps": 8}},
    }
    suite = tiny_suite(tmp, seed=0, plugins=[str(tmp / "decoy_plugin.py")], fallbacks=cheap)
    suite["dataset"] = {"name": "digits", "split": "test", "n_examples": 60}
    suite["models"] = [
        {
            "name": "cnn",
            "model": "small_cnn",
            "params": {"width": 0.5},
            "checkpoint": str(tmp / "cnn.pt"),
        },
        {
            "name": "decoy",
            "model": "decoy_cnn",
            "params": {"width": 0.5},
            "checkpoint": str(tmp / "decoy.pt"),
        },
    ]
    suite["evaluations"] = [
        {"type": "clean"},
        {"type": "pgd", "params": {"eps": 0.1, "steps": 10}},
        {"type": "fgsm", "params": {"eps": 0.1, "n_examples": 40}},
    ]
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)
    summary = run_suite(loaded, progress=False, log=lambda _m: None)
    return loaded, summary.leaderboard.set_index("model")


def test_one_fallback_step_per_threat_model_on_its_smallest_subset(decoy_run):
    suite, _ = decoy_run
    added = [e for e in suite.evaluations if e.type == "adaptive"]
    assert [e.resolved.name for e in added] == ["fallbacks_linf_0.1"]
    params = added[0].resolved.params
    assert params.whitebox is None and params.n_examples == 40  # fgsm's 40 of pgd's 60


def test_the_headline_is_what_the_fallbacks_find_on_a_masked_row(decoy_run):
    _, board = decoy_run
    pgd, headline = "pgd_linf_0.1_robust_acc_pct", "linf_0.1_robust_acc_pct"
    decoy, honest = board.loc["decoy"], board.loc["cnn"]
    assert decoy[pgd] > honest[pgd] + 40  # the decoy fools PGD
    assert "unavailable_gradients" in decoy["flags"]
    assert decoy[headline] < decoy[pgd] - 25, (decoy[headline], decoy[pgd])
    assert decoy["linf_0.1_by"] == "fallbacks_linf_0.1"
    # the honest row: the step attacked nothing, reports no number, and changes no headline
    assert math.isnan(honest["fallbacks_linf_0.1_robust_acc_pct"])
    assert honest[headline] <= honest[pgd]
    assert not honest["flags"]


def test_the_step_can_be_switched_off_and_an_own_adaptive_replaces_it(tmp_path, write_suite):
    base = tiny_suite(tmp_path, evaluations=[{"type": "pgd", "params": {"eps": 0.1}}])
    off = load_suite(write_suite({**base, "fallbacks": False}))
    assert not any(e.type == "adaptive" for e in off.evaluations)
    own = {"type": "adaptive", "params": {"eps": 0.1}}
    mine = load_suite(write_suite({**base, "evaluations": [*base["evaluations"], own]}))
    assert [e.resolved.name for e in mine.evaluations if e.type == "adaptive"] == [
        "adaptive_linf_0.1"
    ]
    clash = {"type": "fgsm", "name": "fallbacks_linf_0.1", "params": {"eps": 0.2}}
    with pytest.raises(SuiteError, match=r"fallbacks_linf_0\.1.*automatic fallback step"):
        load_suite(write_suite({**base, "evaluations": [*base["evaluations"], clash]}))
    with pytest.raises(SuiteError, match=r"fallbacks\.decision_based\.type"):
        load_suite(write_suite({**base, "fallbacks": {"decision_based": {"type": "nope"}}}))
