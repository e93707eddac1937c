"""The harness's attacks on a real adversarially trained CIFAR-10 checkpoint agree with the
field's libraries run directly on the same images: PGD with torchattacks (within 1 point),
AutoAttack with the pyautoattack package (exactly). The model comes in through a suite
(URL + SHA-256 found offline in a weights folder, its own normalization), so the test also
covers the path a user takes with a published checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.runner.worker import SuiteData, materialize_model
from benchmark.suite import load_suite
from benchmark.utils import derive_seed

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEIGHTS = SHARED / "weights"
pytestmark = pytest.mark.skipif(
    not (SHARED / "cifar-10-batches-py").is_dir() or not WEIGHTS.is_dir(),
    reason="../shared/data (real CIFAR-10 and checkpoints) is absent on this machine",
)
CNN_A_ADV = {
    "name": "cnn_a_adv",
    "model": "cnn_a",
    "normalization": {"mean": [0.4914, 0.4824, 0.4467], "std": [0.2471, 0.2435, 0.2616]},
    "checkpoint": {
        "url": "https://github.com/Verified-Intelligence/alpha-beta-CROWN/raw/main/"
        "complete_verifier/models/sdp/cifar_cnn_a_adv.model",
        "sha256": "e45d79e68342395f4ada6f89852ae41feba14b430a3b2462a04d7f5e02c65657",
    },
}
EPS = 2 / 255


def reference_suite(tmp_path: Path, write_suite, evaluations: list[dict], n: int):
    spec = {
        "name": "reference",
        "seed": 0,
        "device": "cpu",
        "batch_size": n,  # one block: the package batches like us within a block
        "dataset": {"name": "cifar10", "root": str(SHARED), "n_examples": n, "subset_seed": 1},
        "weights_dir": [str(WEIGHTS)],
        "models": [CNN_A_ADV],
        "evaluations": evaluations,
        "sanity": False,
        "fallbacks": False,
        "output_dir": str(tmp_path / "run"),
        "leaderboard_dir": str(tmp_path / "leaderboard"),
    }
    suite = load_suite(write_suite(spec))
    data = SuiteData(suite)
    model = materialize_model(suite.models[0], suite, data, torch.device("cpu"), False)
    run_suite(suite, progress=False, log=lambda _m: None)
    cache = ResultCache(suite.cache_root)
    records = [cache.load_records(job.key) for job in expand_jobs(suite, "cpu")]
    return model, data.evaluation_set(), records


def robust_flags(model, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def test_pgd_agrees_with_torchattacks_on_the_same_images(tmp_path, write_suite):
    import torchattacks

    settings = {"norm": "Linf", "eps": "2/255", "steps": 20, "step_size": "1/510"}
    model, data, (records,) = reference_suite(
        tmp_path,
        write_suite,
        [{"type": "pgd", "params": {**settings, "random_start": False, "early_stop": False}}],
        n=200,
    )
    assert records["index"].tolist() == data.indices.tolist()
    ours = 100.0 * records["robust"].mean()
    attack = torchattacks.PGD(model, eps=EPS, alpha=1 / 510, steps=20, random_start=False)
    theirs = 100.0 * robust_flags(model, attack(data.x, data.y), data.y).float().mean().item()
    clean = 100.0 * records["clean_correct"].mean()
    assert 10 < theirs < clean - 5, "needs a model the attack hurts but does not break"
    assert abs(ours - theirs) <= 1.0, (ours, theirs)


def check_autoattack(tmp_path, write_suite, params: dict, n: int) -> None:
    from pyautoattack import AutoAttack

    model, data, (records,) = reference_suite(
        tmp_path, write_suite, [{"type": "autoattack", "params": {"eps": "2/255", **params}}], n
    )
    suite = load_suite(tmp_path / "suite.yaml")
    job_seed = derive_seed(suite.seed, expand_jobs(suite, "cpu")[0].seed_key)
    reference = AutoAttack(
        model,
        eps=EPS,
        norm="Linf",
        seed=job_seed % (2**31),  # what the harness hands the package (attacks/library.py)
        device=torch.device("cpu"),
        version=params["version"],
        attacks=params.get("attacks_to_run"),
    )
    x_adv, _ = reference.run_standard_evaluation(data.x, data.y, batch_size=n)
    expected = robust_flags(model, x_adv, data.y).numpy()
    assert (records["robust"].to_numpy() == expected).all()
    assert expected.sum() < records["clean_correct"].sum(), "the attack should break something"


def test_autoattack_agrees_exactly_with_pyautoattack(tmp_path, write_suite):
    check_autoattack(
        tmp_path, write_suite, {"version": "custom", "attacks_to_run": ["apgd-ce", "apgd-t"]}, 64
    )


@pytest.mark.slow
def test_standard_autoattack_agrees_exactly_with_pyautoattack(tmp_path, write_suite):
    check_autoattack(tmp_path, write_suite, {"version": "standard"}, 64)
