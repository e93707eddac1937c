"""Deep ensembles as suite rows: members trained with distinct seeds or loaded from
checkpoints, the row's prediction the members' mean probability, its cache key covering
every member."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.evaluations.predictions import probabilities_from_records
from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.suite import load_suite
from models import build_model, save_checkpoint
from tests.conftest import tiny_suite

RECIPE = {"recipe": "standard", "params": {"epochs": 1, "batch_size": 64, "optimizer": "adam",
                                            "lr": 0.01}}  # fmt: skip
CNN = {"model": "small_cnn", "params": {"width": 0.25}}


def quiet(_message: str) -> None:
    pass


def ensemble_suite(tmp_path, seeds=(0, 1)):
    models = [
        {"name": "ens", **CNN, "training": RECIPE, "ensemble": {"seeds": list(seeds)}},
        *({"name": f"member{s}", **CNN, "training": {**RECIPE, "seed": s}} for s in seeds),
    ]
    evaluations = [{"type": "clean", "params": {"bootstrap": 0}}]
    return tiny_suite(tmp_path, models=models, evaluations=evaluations)


def test_the_ensemble_row_predicts_the_mean_probability_of_its_members(tmp_path, write_suite):
    suite = load_suite(write_suite(ensemble_suite(tmp_path)))
    summary = run_suite(suite, progress=False, log=quiet)
    cache = ResultCache(suite.cache_root)
    jobs = {job.row_name: job for job in expand_jobs(suite, "cpu")}
    probs = {row: probabilities_from_records(cache.load_records(j.key)) for row, j in jobs.items()}
    np.testing.assert_allclose(probs["ens"], (probs["member0"] + probs["member1"]) / 2, atol=1e-6)
    assert not np.allclose(probs["member0"], probs["member1"])  # distinct seeds, distinct nets
    board = summary.leaderboard.set_index("model")
    assert board.loc["ens", "clean_nll"] <= board.loc[["member0", "member1"], "clean_nll"].mean()
    # the members' checkpoints are the member rows' (same recipe and seed): trained once
    checkpoints = list((tmp_path / "run").rglob("checkpoints/*.pt"))
    assert len(checkpoints) == 2, checkpoints


def test_the_cache_key_covers_every_member(tmp_path, write_suite):
    def ensemble_key(seeds):
        suite = load_suite(write_suite(ensemble_suite(tmp_path, seeds), f"s{seeds}.yaml"))
        return next(j.key for j in expand_jobs(suite, "cpu") if j.row_name == "ens")

    assert ensemble_key((0, 1)) != ensemble_key((0, 2))
    assert len({ensemble_key((0, 1)), ensemble_key((0, 1, 2))}) == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**CNN, "ensemble": {"seeds": [0, 1]}, "random_init": True}, "add 'training'"),
        (
            {**CNN, "training": {**RECIPE, "seed": 4}, "ensemble": {"seeds": [0, 1]}},
            "not training.seed",
        ),
        ({**CNN, "training": RECIPE, "ensemble": {"seeds": [0, 0]}}, "distinct"),
        ({**CNN, "training": RECIPE, "ensemble": {"seeds": [0]}}, "at least 2"),
        (
            {**CNN, "ensemble": {"seeds": [0, 1], "checkpoints": ["a", "b"]}, "training": RECIPE},
            "exactly one of 'seeds'",
        ),
        (
            {**CNN, "checkpoint": "a.pt", "ensemble": {"checkpoints": ["a.pt", "b.pt"]}},
            "drop 'checkpoint'",
        ),
    ],
)
def test_bad_ensemble_entries_are_one_line_errors(tmp_path, write_suite, entry, message):
    with pytest.raises(BenchmarkError, match=message):
        load_suite(write_suite(tiny_suite(tmp_path, models=[{"name": "e", **entry}])))


def test_an_ensemble_of_checkpoints(tmp_path, write_suite):
    from benchmark.datasets import load_dataset

    info = load_dataset("digits", "test").info
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("small_cnn", {"width": 0.25}, info)
        paths.append(tmp_path / f"m{seed}.pt")
        save_checkpoint(model, paths[-1])
    models = [{"name": "ens", **CNN, "ensemble": {"checkpoints": [str(p) for p in paths]}}]
    suite = tiny_suite(tmp_path, models=models, evaluations=[{"type": "clean"}])
    summary = run_suite(load_suite(write_suite(suite)), progress=False, log=quiet)
    assert summary.leaderboard["model"].tolist() == ["ens"]
    first_key = expand_jobs(load_suite(write_suite(suite)), "cpu")[0].key
    torch.manual_seed(7)
    save_checkpoint(build_model("small_cnn", {"width": 0.25}, info), paths[1])  # a member changes
    assert expand_jobs(load_suite(write_suite(suite)), "cpu")[0].key != first_key
    models[0]["ensemble"]["checkpoints"][1] = str(tmp_path / "missing.pt")
    with pytest.raises(BenchmarkError, match=r"models\[0\]\.ensemble\.checkpoints\[1\]: file not"):
        load_suite(write_suite(tiny_suite(tmp_path, models=models)))


def test_an_ensemble_of_rows_of_different_architectures(tmp_path, write_suite):
    """``ensemble.rows``: members are other rows (here a CNN and a ResNet), averaged by
    probability; the key follows every member."""
    models = [
        {"name": "cnn", **CNN, "training": RECIPE},
        {"name": "rn", "model": "resnet20", "params": {"width": 0.25}, "training": RECIPE},
        {"name": "mix", **CNN, "ensemble": {"rows": ["cnn", "rn"]}},
    ]
    content = tiny_suite(
        tmp_path, models=models, evaluations=[{"type": "clean", "params": {"bootstrap": 0}}]
    )
    suite = load_suite(write_suite(content))
    run_suite(suite, progress=False, log=quiet)
    cache = ResultCache(suite.cache_root)
    jobs = {job.row_name: job for job in expand_jobs(suite, "cpu")}
    probs = {row: probabilities_from_records(cache.load_records(j.key)) for row, j in jobs.items()}
    np.testing.assert_allclose(probs["mix"], (probs["cnn"] + probs["rn"]) / 2, atol=1e-6)
    content["models"][1]["training"] = {**RECIPE, "seed": 9}
    changed = load_suite(write_suite(content, "changed.yaml"))
    assert (
        next(j.key for j in expand_jobs(changed, "cpu") if j.row_name == "mix") != jobs["mix"].key
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["cnn", "nope"], r"models\[1\]\.ensemble\.rows: no row named 'nope'"),
        (["cnn", "e"], "'e' is an ensemble row"),
        (["cnn", "cnn"], "rows must be distinct"),
    ],
)
def test_bad_ensemble_rows_are_refused(tmp_path, write_suite, rows, message):
    models = [
        {"name": "cnn", **CNN, "training": RECIPE},
        {"name": "e", **CNN, "ensemble": {"rows": rows}},
    ]
    with pytest.raises(BenchmarkError, match=message):
        load_suite(write_suite(tiny_suite(tmp_path, models=models)))
