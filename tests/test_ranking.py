"""CW-L2 minimal distances against foolbox, DDN's ranking against CW's, and the
robustness-ranking evaluation's bins (AR-AdaLS Figure 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from benchmark.attacks.minimal import CWConfig, DDNConfig, carlini_wagner_l2, ddn_l2
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.evaluations.ranking import robustness_bins

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
    ours, adv = carlini_wagner_l2(model, x, y, CWConfig(binary_search_steps=9, steps=100))
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
    cw, _ = carlini_wagner_l2(model, x, y, CWConfig(binary_search_steps=9, steps=100))
    ddn, adv = ddn_l2(model, x, y, DDNConfig(steps=100))
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
    result = entry.obj(params).run(model, data, EvalContext(CPU, 128, 0, False))
    records = result.records
    assert len(records) == 100
    sizes = records["bin"].value_counts().sort_index()
    assert list(sizes.index) == list(range(5)) and set(sizes) == {20}
    wrong = ~records["correct"]
    assert (records.loc[wrong, "distance"] == 0).all()
    assert records["verified"].all() and result.extras["n_unverified"] == 0
    bins = result.extras["bins"]
    assert all(np.isfinite(b["ece_pct"]) for b in bins)
    assert bins[0]["acc_pct"] <= bins[-1]["acc_pct"]
    assert bins[0]["mean_confidence_pct"] < bins[-1]["mean_confidence_pct"]
    assert result.artifacts["bins.png"].startswith(b"\x89PNG")
    assert result.artifacts["bins.csv"].decode().startswith("bin,count,")
