"""The mission suite (suites/cifar10.yaml, GPU-sized) holds every paper's protocol: the rows,
the evaluations at the papers' settings, and each paper's claims. Validated without running."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.suite import load_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mission():
    return load_suite(REPO / "suites" / "cifar10.yaml")


def rows(suite):
    return {m.row_name: m for m in suite.models}


def evaluation(suite, kind, **params):
    found = [
        e for e in suite.evaluations
        if e.type == kind and all(getattr(e.resolved.params, k) == v for k, v in params.items())
    ]  # fmt: skip
    assert found, f"no {kind} evaluation with {params}"
    return found[0]


def test_every_papers_rows_are_there(mission):
    models = rows(mission)
    keys = {m.model for m in models.values()}
    assert {"mcdo_resnet18", "mcdo_smooth_resnet18", "smooth_resnet18", "kap_resnet18"} <= keys
    assert models["kap_resnet18_s0"].params["sigma"] == 0.0  # RN18-KAP
    ensemble = models["deep_ensemble_resnet18"].ensemble
    assert ensemble is not None and ensemble.rows is not None and len(ensemble.rows) == 5
    assert {p.method for p in models["resnet18"].posthoc} == {"pep", "temperature"}
    recipes = {m.training.recipe for m in models.values() if m.training is not None}
    assert {"adals", "ar_adals", "label_smoothing", "sam_swa", "trades", "pgd_at"} <= recipes
    sam, swa = models["sam_resnet18"].training, models["swa_resnet18"].training
    assert sam is not None and sam.params == {"swa": False}
    assert swa is not None and swa.params == {"rho": 0.0}
    assert models["fmfp_ls_resnet18"].training.params["eps"] == 0.05  # type: ignore[union-attr]


def test_the_papers_evaluation_settings(mission):
    evaluation(mission, "ensemble_size")
    evaluation(mission, "consistency")
    sweep = evaluation(mission, "eps_sweep", norm="L2")
    assert 1.0 in [float(e) for e in sweep.resolved.params.eps]
    evaluation(mission, "square", norm="L2", eps="1")  # KAP Table 1: eps 1.0, not 0.5
    ranking = evaluation(mission, "robustness_ranking", method="cw")
    p = ranking.resolved.params
    assert (p.binary_search_steps, p.steps, p.lr, p.initial_const) == (3, 500, 0.005, 0.01)
    assert all(len(group) == 5 for group in p.replica_groups.values())
    assert evaluation(mission, "corruptions").resolved.params.corruptions == "all"  # 19 types


def test_each_paper_has_claims(mission):
    sources = " ".join(c.source for c in mission.claims)
    for paper in ("PEP", "KAP", "Spatial smoothing", "AR-AdaLS", "FMFP"):
        assert paper in sources, paper
