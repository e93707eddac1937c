"""The transfer fallback end to end: a decoy model (the trained CNN's forward with a
zero-valued, useless-gradient path) is attacked through a surrogate row of the same suite;
the surrogate's identity is in the job key, and a surrogate that is no row is refused."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from benchmark.errors import BenchmarkError
from models import register_model
from models.small_cnn import small_cnn

DECOY = torch.randn(64, 10, generator=torch.Generator().manual_seed(1))


def _decoy_output(_module: nn.Module, args: tuple[torch.Tensor], out: torch.Tensor):
    term = args[0].flatten(1) @ DECOY.to(args[0].device)
    return out.detach() + (term - term.detach())


@register_model("test_decoy_cnn", "small_cnn whose output is detached plus a decoy gradient")
def decoy_cnn(num_classes: int, in_channels: int) -> nn.Module:
    net = small_cnn(num_classes, in_channels, width=0.5)
    net.register_forward_hook(_decoy_output)
    return net


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory, trained):
    from models.checkpoints import save_checkpoint
    from tests.conftest import tiny_suite

    tmp = tmp_path_factory.mktemp("transfer")
    checkpoint = tmp / "small_cnn.pt"
    save_checkpoint(trained[0], checkpoint)
    suite = tiny_suite(tmp, seed=0, batch_size=128)
    suite["dataset"] = {"name": "digits", "split": "test"}
    common = {"checkpoint": str(checkpoint)}
    suite["models"] = [
        {"name": "standard", "model": "small_cnn", "params": {"width": 0.5}, **common},
        {"name": "decoy", "model": "test_decoy_cnn", **common},
    ]
    threat = {"norm": "Linf", "eps": 0.1, "n_examples": 50}
    suite["evaluations"] = [
        {"type": "pgd", "params": {**threat, "steps": 10}},
        {
            "type": "adaptive",
            "params": {
                **threat,
                "transfer": {"type": "transfer", "params": {"surrogate": "standard"}},
                "decision_based": {"type": "hopskipjump", "params": {"steps": 4}},
            },
        },
    ]
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path, suite


def test_a_decoy_model_is_broken_through_the_surrogate(suite_file):
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite

    path, _ = suite_file
    board = run_suite(load_suite(path), progress=False, log=lambda _m: None).leaderboard
    board = board.set_index("model")
    pgd, adaptive = "pgd_linf_0.1_robust_acc_pct", "adaptive_linf_0.1_robust_acc_pct"
    assert board.loc["decoy", pgd] > board.loc["standard", pgd] + 40  # fooled
    # PGD on the honest twin transfers: the decoy gets (about) its twin's number
    assert board.loc["decoy", adaptive] <= board.loc["standard", adaptive] + 10
    assert "unavailable_gradients" in board.loc["decoy", "flags"]


def test_the_surrogate_is_part_of_the_key_and_must_be_a_row(suite_file, tmp_path):
    from benchmark.runner.jobs import expand_jobs
    from benchmark.suite import load_suite

    _, suite = suite_file

    def adaptive_keys(content: dict) -> dict[str, str]:
        other = tmp_path / "other.yaml"
        other.write_text(yaml.safe_dump(content))
        jobs = expand_jobs(load_suite(other), "cpu")
        return {j.row_name: j.key for j in jobs if j.evaluation_name.startswith("adaptive")}

    before = adaptive_keys(suite)
    retrained = yaml.safe_load(yaml.safe_dump(suite))
    del retrained["models"][0]["checkpoint"]
    retrained["models"][0]["random_init"] = True  # another surrogate, same name
    changed = {k for k, v in adaptive_keys(retrained).items() if before.get(k) != v}
    assert "decoy" in changed  # the decoy row's key follows its surrogate's identity

    missing = yaml.safe_load(yaml.safe_dump(suite))
    missing["evaluations"][1]["params"]["transfer"]["params"]["surrogate"] = "nobody"
    with pytest.raises(BenchmarkError, match="surrogate 'nobody' is not a model row"):
        adaptive_keys(missing)
