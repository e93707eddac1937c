"""``save_adversarial: true``: the final inputs come out of the run, checksummed with the
result, inside the eps-ball, and they reproduce the robust accuracy when predicted again
(on the attacked model) or measure transfer on another model."""

from __future__ import annotations

import pytest
import torch

from benchmark.attacks.saved import ADVERSARIAL_FILE, load_adversarial, transfer_accuracy
from benchmark.errors import BenchmarkError
from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.suite import load_suite
from models import build_model, load_checkpoint
from tests.conftest import tiny_suite


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, trained):
    from models import save_checkpoint

    tmp = tmp_path_factory.mktemp("saved")
    save_checkpoint(trained[0], tmp / "cnn.pt")
    pgd = {"type": "pgd", "params": {"eps": 0.1, "steps": 5, "save_adversarial": True}}
    suite = tiny_suite(tmp, evaluations=[pgd], sanity=False, seed=0)
    suite["dataset"] = {"name": "digits", "split": "test", "n_examples": 120}
    suite["models"] = [
        {
            "name": "cnn",
            "model": "small_cnn",
            "params": {"width": 0.5},
            "checkpoint": str(tmp / "cnn.pt"),
        }
    ]
    import yaml

    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)
    summary = run_suite(loaded, progress=False, log=lambda _m: None)
    job = expand_jobs(loaded, "cpu")[0]
    return loaded, summary, ResultCache(loaded.cache_root).path(job.key), tmp


def test_saved_examples_reproduce_the_robust_accuracy(saved_run, trained):
    suite, summary, folder, tmp = saved_run
    saved = load_adversarial(folder)
    assert len(saved.x) == 120 and saved.x.dtype == torch.float32
    from benchmark.datasets import load_dataset

    test = load_dataset("digits", "test").subset(120, seed=suite.dataset.subset_seed)
    position = {int(i): k for k, i in enumerate(test.indices)}
    reference = torch.stack([test.x[position[int(i)]] for i in saved.index])
    assert (saved.x - reference).abs().amax() <= 0.1 + 1e-6  # inside the Linf ball
    assert saved.x.min() >= 0 and saved.x.max() <= 1
    model = build_model("small_cnn", {"width": 0.5}, test.info)
    load_checkpoint(model, tmp / "cnn.pt")
    robust_pct = summary.leaderboard.set_index("model").loc["cnn", "pgd_linf_0.1_robust_acc_pct"]
    # predicted again in the evaluation's own batches: the same forward passes, the same
    # verdicts (a clean-wrong example's saved input is its clean one, still wrong)
    assert transfer_accuracy(model, saved, batch_size=suite.batch_size) == pytest.approx(robust_pct)
    assert 100.0 * saved.robust.mean() == pytest.approx(robust_pct)


def test_a_damaged_saved_file_is_not_read(saved_run, tmp_path):
    import shutil

    _, _, folder, _ = saved_run
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    (copy / ADVERSARIAL_FILE).write_bytes((copy / ADVERSARIAL_FILE).read_bytes()[:-10])
    with pytest.raises(BenchmarkError, match="does not match its checksum"):
        load_adversarial(copy)


def test_save_adversarial_is_refused_where_it_would_be_ignored(tmp_path, write_suite):
    sweep = {
        "type": "eps_sweep",
        "params": {"eps": [0.1], "attack": {"type": "fgsm"}, "save_adversarial": True},
    }
    with pytest.raises(BenchmarkError, match="does not save adversarial examples"):
        load_suite(write_suite(tiny_suite(tmp_path, evaluations=[sweep])))
    sharded = {"type": "fgsm", "params": {"eps": 0.1, "save_adversarial": True}, "shard_size": 32}
    with pytest.raises(BenchmarkError, match="not with shard_size"):
        load_suite(write_suite(tiny_suite(tmp_path, evaluations=[sharded])))


def test_the_option_keeps_existing_keys_when_off(tmp_path, write_suite):
    def key(params):
        evaluation = {"type": "fgsm", "params": {"eps": 0.1, **params}}
        suite = load_suite(write_suite(tiny_suite(tmp_path, evaluations=[evaluation]), "k.yaml"))
        return expand_jobs(suite, "cpu")[0].key

    assert key({}) == key({"save_adversarial": False}) != key({"save_adversarial": True})
