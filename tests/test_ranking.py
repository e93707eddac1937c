"""CW-L2 minimal distances against foolbox, DDN's ranking against CW's, and the
robustness-ranking evaluation's bins (AR-AdaLS Figure 1). FMN: tests/test_minimal_attacks.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from benchmark.attacks.minimal import CarliniWagnerL2, DecoupledDirectionNormL2
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.metrics.robustness import robustness_bins
from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.suite import load_suite
from benchmark.suite.schema import EvaluationSpec
from tests.conftest import tiny_suite

CPU = torch.device("cpu")


def correct_subset(model, data, n):
    subset = data.subset(n, seed=0)
    with torch.no_grad():
        ok = model(subset.x).argmax(1) == subset.y
    return subset.x[ok], subset.y[ok]


def test_cw_l2_agrees_with_foolbox(trained):
    import foolbox

    model, data = trained
    x, y = correct_subset(model, data, 40)
    cw = CarliniWagnerL2(CarliniWagnerL2.Params(binary_search_steps=9, steps=100))
    ours, adv = cw.distances(model, x, y)
    attack = foolbox.attacks.L2CarliniWagnerAttack(
        binary_search_steps=9, steps=100, stepsize=0.01, confidence=0, initial_const=0.001
    )
    raw, _, success = attack(foolbox.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=None)
    reference = (raw - x).flatten(1).norm(dim=1)
    reference[~success] = float("inf")
    both = torch.isfinite(ours) & torch.isfinite(reference)
    assert both.float().mean() > 0.9
    relative = ((ours - reference).abs() / reference)[both]
    assert relative.median() < 0.10
    assert spearmanr(ours[both], reference[both]).statistic > 0.9
    found = torch.isfinite(ours)
    with torch.no_grad():
        assert torch.all(model(adv[found]).argmax(1) != y[found])
    assert torch.allclose((adv - x).flatten(1).norm(dim=1)[found], ours[found], rtol=1e-5)
    assert adv.min() >= 0 and adv.max() <= 1


def test_ddn_ranking_correlates_with_cw(trained):
    model, data = trained
    x, y = correct_subset(model, data, 40)
    cw_params = CarliniWagnerL2.Params(binary_search_steps=9, steps=100)
    cw, _ = CarliniWagnerL2(cw_params).distances(model, x, y)
    ddn_params = DecoupledDirectionNormL2.Params(steps=100)
    ddn, adv = DecoupledDirectionNormL2(ddn_params).distances(model, x, y)
    assert torch.isfinite(ddn).all()
    assert spearmanr(cw, ddn).statistic > 0.8
    with torch.no_grad():
        assert torch.all(model(adv).argmax(1) != y)


def test_robustness_bins_partition_into_equal_sizes():
    distances = np.array([0.0, 0.0, 0.3, 0.1, np.inf, 0.2, 0.5, 0.4, 0.25, 0.15, 0.35])
    bins = robustness_bins(distances, 4)
    sizes = np.bincount(bins, minlength=4)
    assert sizes.sum() == len(distances) and sizes.max() - sizes.min() <= 1
    for b in range(3):  # every distance in a lower bin is <= every distance in a higher bin
        assert distances[bins == b].max() <= distances[bins == b + 1].min()
    assert bins[4] == 3  # not found (+inf) = most robust


@pytest.mark.parametrize("method", ["cw", "ddn"])
def test_ranking_evaluation_bins_and_invariants(trained, method):
    model, data = trained
    entry = EVALUATIONS.get("robustness_ranking")
    params = entry.params_model.model_validate(
        {"method": method, "n_bins": 5, "n_examples": 100, "steps": 50, "binary_search_steps": 6}
    )
    assert params.relative_to == "prediction"  # the paper's f(x + delta) != f(x)
    result = entry.obj(params).run(model, data, EvalContext.for_model(model, CPU, 128, 0, False))
    records = result.records
    assert len(records) == 100 and result.extras["n_attacked"] == 100
    sizes = records["bin"].value_counts().sort_index()
    assert list(sizes.index) == list(range(5)) and set(sizes) == {20}
    wrong = ~records["correct"]
    assert wrong.sum() > 0, "the fixture model should misclassify some of 100 examples"
    # misclassified examples are ranked by their own distance off the (wrong) prediction
    assert (records.loc[wrong, "distance"] > 0).all()
    assert records["verified"].all() and result.extras["n_unverified"] == 0
    bins = result.extras["bins"]
    assert all(np.isfinite(b["ece_pct"]) for b in bins)
    assert bins[0]["acc_pct"] <= bins[-1]["acc_pct"]
    assert bins[0]["mean_confidence_pct"] < bins[-1]["mean_confidence_pct"]
    assert result.artifacts["bins.png"].startswith(b"\x89PNG")
    assert result.artifacts["bins.csv"].decode().startswith("bin,count,")


def test_ranking_relative_to_label_keeps_misclassified_at_distance_zero(trained):
    model, data = trained
    entry = EVALUATIONS.get("robustness_ranking")
    given = {"method": "ddn", "n_bins": 4, "n_examples": 100, "ddn_steps": 30}
    ctx = EvalContext.for_model(model, CPU, 128, 0, False)
    label = {**given, "relative_to": "label"}
    by_label = entry.obj(entry.params_model.model_validate(label))
    by_prediction = entry.obj(entry.params_model.model_validate(given))
    label_records = by_label.run(model, data, ctx).records
    prediction_records = by_prediction.run(model, data, ctx).records
    wrong = ~label_records["correct"]
    assert (label_records.loc[wrong, "distance"] == 0).all()
    assert by_label.run(model, data, ctx).extras["n_attacked"] == int((~wrong).sum())
    # correctly classified examples: the same attack off the same class, the same distance
    np.testing.assert_allclose(
        label_records.loc[~wrong, "distance"], prediction_records.loc[~wrong, "distance"]
    )
    specs = [EvaluationSpec(type="robustness_ranking", params=p) for p in (given, label)]
    assert specs[0].resolved.identity() != specs[1].resolved.identity()  # not one cache entry


def test_verified_distances_are_relative_to_the_prediction(trained):
    from benchmark.attacks.distances import verified_minimal_distances

    model, data = trained
    subset = data.subset(60, seed=1)
    with torch.no_grad():
        predictions = model(subset.x).argmax(1)
    attack = DecoupledDirectionNormL2(DecoupledDirectionNormL2.Params(steps=30))
    distances, todo, verified = verified_minimal_distances(
        model, subset.x, subset.y, attack, "prediction", CPU, 32, False
    )
    assert list(todo) == list(range(60)) and verified.all() and np.isfinite(distances).all()
    # re-run the attack off the predicted class: every verified adversarial leaves it
    _, adv = attack.distances(model, subset.x, predictions)
    with torch.no_grad():
        assert torch.all(model(adv).argmax(1) != predictions)


def replica_suite(tmp_path, seeds):
    recipe = {"epochs": 1, "batch_size": 64, "optimizer": "adam", "lr": 0.01}
    models = [
        {
            "name": f"cnn_s{seed}",
            "model": "small_cnn",
            "params": {"width": 0.25},
            "training": {"recipe": "standard", "params": recipe, "seed": seed},
        }
        for seed in seeds
    ]
    ranking = {
        "type": "robustness_ranking",
        "name": "rank",
        "params": {
            "method": "ddn",
            "n_bins": 3,
            "ddn_steps": 20,
            "replica_groups": {"cnn": [m["name"] for m in models]},
        },
    }
    return tiny_suite(tmp_path, models=models, evaluations=[ranking])


def test_replica_groups_add_per_bin_variance_across_seeds(tmp_path, write_suite):
    suite = load_suite(write_suite(replica_suite(tmp_path, [0, 1])))
    summary = run_suite(suite, progress=False, log=lambda message: None)
    board = summary.leaderboard.set_index("model")
    jobs = {j.row_name: j.key for j in expand_jobs(suite, "cpu")}
    cache = ResultCache(suite.cache_root)
    records = {row: cache.load_records(key) for row, key in jobs.items()}
    # independent recomputation: true-class probability per run, the sample variance (1/(M-1),
    # as the AR-AdaLS paper) per example
    probs = np.stack(
        [
            r[[f"prob_{k}" for k in range(10)]].to_numpy()[np.arange(60), r["label"]]
            for r in records.values()
        ]
    )
    m = len(probs)
    variance = ((probs - probs.mean(axis=0)) ** 2).sum(axis=0) / (m - 1)
    assert variance.mean() > 0, "different training seeds must give different models"
    for row, frame in records.items():
        least = variance[frame["bin"].to_numpy() == 0].mean()
        most = variance[frame["bin"].to_numpy() == 2].mean()
        assert board.loc[row, "rank_var_least_robust_bin"] == pytest.approx(least)
        assert board.loc[row, "rank_var_most_robust_bin"] == pytest.approx(most)
    table = pd.read_csv(tmp_path / "run" / "plots" / "rank" / "variance_cnn.csv")
    assert len(table) == 2 * 3 and set(table["members"]) == {2}
    assert (tmp_path / "run" / "plots" / "rank" / "variance_cnn.png").stat().st_size > 0


def test_replica_groups_name_rows_of_the_suite(tmp_path, write_suite):
    content = replica_suite(tmp_path, [0, 1])
    content["evaluations"][0]["params"]["replica_groups"] = {"cnn": ["cnn_s0", "nope"]}
    with pytest.raises(BenchmarkError, match=r"replica_groups\.cnn: no model row 'nope'"):
        load_suite(write_suite(content))
    content["evaluations"][0]["params"]["replica_groups"] = {"cnn": ["cnn_s0"]}
    with pytest.raises(BenchmarkError, match="at least two distinct model rows"):
        load_suite(write_suite(content))
