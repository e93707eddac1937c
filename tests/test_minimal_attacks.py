"""Minimal-norm attacks in the attack registry: FMN-L2 against the authors' reference (foolbox's
port), the contract every minimal-norm attack's output must meet, the fixed-eps/minimal-norm
separation, ``robustness_ranking``'s ``method``/``attack_params``, and cache keys (old
spellings keep their keys; bumping an attack's ``version`` changes them)."""

from __future__ import annotations

import pytest
import torch
from pydantic import Field
from scipy.stats import spearmanr
from torch import nn

from benchmark.attacks import ATTACKS, MinimalNormAttack, register_attack
from benchmark.attacks.minimal import CarliniWagnerL2, FastMinimumNormL2
from benchmark.attacks.pgd import PGD
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.runner import expand_jobs
from benchmark.runner.jobs import evaluation_identity
from benchmark.suite import load_suite
from benchmark.suite.schema import EvaluationSpec
from benchmark.utils import stable_hash
from tests.conftest import tiny_suite

CPU = torch.device("cpu")


def correct_subset(model: nn.Module, data, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    subset = data.subset(n, seed=0)
    with torch.no_grad():
        ok = model(subset.x).argmax(1) == subset.y
    return subset.x[ok], subset.y[ok]


def foolbox_fmn_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, monkeypatch) -> torch.Tensor:
    """Distances of foolbox's ``L2FMNAttack`` (defaults: 100 steps, step 1 -> 0.01, gamma
    0.05 -> 0.001), +inf where it failed.

    foolbox 3.3.4's ``L2FMNAttack.project`` is a no-op (``factor = minimum(1, norms / norms)``,
    norms of ``x`` instead of ``x - x0``), so its L2 run never applies the adaptive norm
    constraint that defines FMN. The authors' own code (pralab/Fast-Minimum-Norm-FMN-Attack,
    ``src/attacks/fmn.py``) projects with ``x0 + clip_lp_norms(x - x0, norm=epsilon, p=2)``;
    that projection is patched in, so the comparison is with the published algorithm."""
    import foolbox
    from foolbox.attacks.gradient_descent_base import clip_lp_norms

    def project(self, x, x0, epsilon):
        return x0 + clip_lp_norms(x - x0, norm=epsilon, p=2)

    monkeypatch.setattr(foolbox.attacks.L2FMNAttack, "project", project)
    attack = foolbox.attacks.L2FMNAttack(steps=100)
    raw, _, success = attack(foolbox.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=None)
    reference = (raw - x).flatten(1).norm(dim=1)
    reference[~success] = float("inf")
    return reference


def test_fmn_l2_agrees_with_foolbox(trained, monkeypatch):
    model, data = trained
    x, y = correct_subset(model, data, 40)
    ours, _ = FastMinimumNormL2().distances(model, x, y)
    reference = foolbox_fmn_l2(model, x, y, monkeypatch)
    found, found_ref = torch.isfinite(ours), torch.isfinite(reference)
    # the same examples broken (ours also checks the last iterate: it may break one more)
    assert found_ref.sum() >= 0.5 * len(x)
    assert torch.all(found[found_ref]) and (found & ~found_ref).sum() <= 1
    relative = ((ours - reference).abs() / reference)[found_ref]
    # measured: median 4e-7, max 1e-3 (float rounding; ``<`` vs ``<=`` when tracking the best)
    assert relative.median() < 1e-3
    assert relative.max() < 0.05
    assert spearmanr(ours[found_ref], reference[found_ref]).statistic > 0.99


@pytest.mark.parametrize(
    ("key", "params"),
    [
        ("cw", {"binary_search_steps": 4, "steps": 50}),
        ("ddn", {"steps": 50}),
        ("fmn", {"steps": 50}),
    ],
)
def test_minimal_norm_output_contract(trained, key, params):
    """Every returned adversarial is misclassified, inside [0, 1], and its L2 distance to the
    clean input is the returned distance; where none is found: +inf and the clean input."""
    model, data = trained
    x, y = correct_subset(model, data, 30)
    entry = ATTACKS.get(key)
    distances, adversarials = entry.obj(entry.params_model.model_validate(params)).distances(
        model, x, y
    )
    assert distances.shape == (len(x),) and adversarials.shape == x.shape
    found = torch.isfinite(distances)
    assert found.float().mean() > 0.5
    with torch.no_grad():
        assert torch.all(model(adversarials[found]).argmax(1) != y[found])
    assert adversarials.min() >= 0 and adversarials.max() <= 1
    norms = (adversarials - x).flatten(1).norm(dim=1)
    assert torch.allclose(norms[found], distances[found], rtol=1e-5, atol=1e-7)
    assert torch.equal(adversarials[~found], x[~found])


def test_families_are_kept_apart():
    assert ATTACKS.get("fmn").extras["family"] == "minimal-norm"
    assert ATTACKS.get("pgd").extras["family"] == "fixed-eps"
    assert "cw" not in EVALUATIONS and "fmn" not in EVALUATIONS  # no eps-ball evaluation types
    attacks = EVALUATIONS.get("attacks").params_model
    with pytest.raises(ValueError, match="attack 'cw' is a minimal-norm attack; an eps-ball"):
        attacks.model_validate({"eps": 0.1, "attacks": [{"type": "cw"}]})
    ranking = EVALUATIONS.get("robustness_ranking").params_model
    with pytest.raises(ValueError, match="attack 'pgd' is a fixed-eps attack; robustness_ranking"):
        ranking.model_validate({"method": "pgd"})
    with pytest.raises(ValueError, match=r"unknown minimal-norm attack 'nope' \(known: cw, ddn"):
        ranking.model_validate({"method": "nope"})


def test_ranking_params_are_checked_by_the_attack(tmp_path, write_suite):
    ranking = EVALUATIONS.get("robustness_ranking").params_model
    resolved = ranking.model_validate({"method": "fmn", "attack_params": {"steps": 7}})
    assert resolved.attack_parameters() == FastMinimumNormL2.Params(steps=7)
    legacy = ranking.model_validate({"method": "ddn", "ddn_steps": 5, "steps": 3})
    assert legacy.attack_parameters().steps == 5  # ddn's shorthand; cw's steps ignored
    assert ranking.model_validate({"method": "cw", "steps": 3}).attack_parameters().steps == 3
    for params, message in [
        ({"method": "fmn", "attack_params": {"gama_init": 0.1}}, "attack_params.gama_init"),
        ({"method": "fmn", "attack_params": {"steps": 0}}, "attack_params.steps: Input should"),
        ({"method": "fmn", "steps": 10}, "steps is a parameter of method cw; give fmn's"),
        ({"method": "cw", "steps": 0}, "method cw: steps: Input should be greater"),
        ({"method": "cw", "ddn_gamma": 2}, "method ddn: ddn_gamma: Input should be less"),
        ({"method": "cw", "steps": 5, "attack_params": {"steps": 6}}, "steps or attack_params"),
    ]:
        with pytest.raises(ValueError, match=message):
            ranking.model_validate(params)
    suite = tiny_suite(
        tmp_path,
        evaluations=[{"type": "robustness_ranking", "params": {"method": "fmn", "lr": 0.1}}],
    )
    with pytest.raises(BenchmarkError) as error:
        load_suite(write_suite(suite))
    assert "\n" not in str(error.value)
    assert "evaluations[0].params: lr is a parameter of method cw" in str(error.value)


def test_fmn_ranking_evaluation_verifies_every_distance(trained):
    model, data = trained
    entry = EVALUATIONS.get("robustness_ranking")
    params = entry.params_model.model_validate(
        {"method": "fmn", "n_bins": 4, "n_examples": 40, "attack_params": {"steps": 30}}
    )
    result = entry.obj(params).run(model, data, EvalContext.for_model(model, CPU, 64, 0, False))
    records = result.records
    assert result.extras["n_unverified"] == 0 and records["verified"].all()
    assert result.extras["n_attacked"] == 40  # misclassified ones too (relative_to: prediction)
    assert (records.loc[~records["correct"], "distance"] > 0).all()
    assert result.metrics["not_found_pct"] < 50


@register_attack("test_minimal_scale", "test plugin: scale the input towards 0.5 until fooled")
class _ScaleTowardsGrey(MinimalNormAttack):
    """A plugin's minimal-norm attack: a line search towards the grey image."""

    class Params(MinimalNormAttack.Params):
        points: int = Field(20, ge=2)

    def distances(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        best = torch.full((len(x),), float("inf"))
        adversarials = x.clone()
        with torch.no_grad():
            for t in torch.linspace(0, 1, self.params.points):  # type: ignore[attr-defined]
                candidate = x + t * (0.5 - x)
                hit = (model(candidate).argmax(1) != y) & torch.isinf(best)
                adversarials[hit] = candidate[hit]
                best[hit] = (candidate - x).flatten(1).norm(dim=1)[hit]
        return best, adversarials


def test_a_plugin_attack_is_a_ranking_method(trained):
    model, data = trained
    entry = EVALUATIONS.get("robustness_ranking")
    params = entry.params_model.model_validate(
        {"method": "test_minimal_scale", "n_bins": 2, "n_examples": 20, "attack_params": {}}
    )
    result = entry.obj(params).run(model, data, EvalContext.for_model(model, CPU, 64, 0, False))
    assert result.extras["n_unverified"] == 0
    with pytest.raises(ValueError, match=r"attack_params\.points: Input should be greater"):
        entry.params_model.model_validate(
            {"method": "test_minimal_scale", "attack_params": {"points": 1}}
        )


# Hashes of evaluation identities computed before the attack registry existed (commit
# c2843f6): old spellings must keep their cache keys, or every cached result is recomputed.
# Ranking relative to the prediction changed the ranking's numbers: the old keys now belong
# to ``relative_to: label`` (added below), the default gets new ones. PGD version 2 (each
# example's random start from its own index) changed PGD's numbers: its jobs get new keys,
# as do sanity's, whose unbounded check runs PGD. Ranking version 2 (the most robust bin's
# accuracy and ECE) gives every ranking job a new key: results without those columns are
# recomputed rather than served.
CHANGED_BY_PGD_VERSION_2 = {
    ("pgd", '{"eps": "8/255"}'),
    ("sanity", "{}"),
    ("attacks", '{"eps": 0.1, "attacks": [{"type": "fgsm"}, {"type": "pgd"}]}'),
}
CHANGED_BY_RANKING_VERSION_2 = {
    ("robustness_ranking", '{"method": "cw", "steps": 50}'),
    ("robustness_ranking", '{"method": "ddn", "ddn_steps": 20, "kappa": 1.0}'),
    ("robustness_ranking", "{}"),
}
# Adversarial evaluations version 4 (every attack call gets its block's clean-correct
# examples, so a worst case is at most each attack alone on any CPU) changes the numbers of
# every attack evaluation: the eps sweep, the one of these not changed above, gets a new key.
CHANGED_BY_WHOLE_BLOCK_CALLS = {("eps_sweep", '{"eps": [0.1], "attack": {"type": "square"}}')}
KEYS_BEFORE_THE_REGISTRY = {
    ("robustness_ranking", '{"method": "cw", "steps": 50}'): "cb23041a291009a7",
    ("robustness_ranking", '{"method": "ddn", "ddn_steps": 20, "kappa": 1.0}'): "e5d806e5ca2c3d30",
    ("robustness_ranking", "{}"): "7d40d33aca0277d7",
    ("pgd", '{"eps": "8/255"}'): "4e9adb9eaa8b1c70",
    ("attacks", '{"eps": 0.1, "attacks": [{"type": "fgsm"}, {"type": "pgd"}]}'): "2d25f58377a9bc9d",
    ("eps_sweep", '{"eps": [0.1], "attack": {"type": "square"}}'): "2aec699fa61059f6",
    ("sanity", "{}"): "669a8b29f06f3dcb",
}


@pytest.mark.parametrize(("type_key", "params"), list(KEYS_BEFORE_THE_REGISTRY))
def test_existing_spellings_keep_their_keys(type_key, params):
    import json

    given = json.loads(params)
    if type_key == "robustness_ranking":
        default = EvaluationSpec(type=type_key, params=given)
        assert (
            stable_hash(evaluation_identity(default)) != KEYS_BEFORE_THE_REGISTRY[type_key, params]
        )
        given["relative_to"] = "label"
    spec = EvaluationSpec(type=type_key, params=given)
    same = stable_hash(evaluation_identity(spec)) == KEYS_BEFORE_THE_REGISTRY[type_key, params]
    changed = CHANGED_BY_PGD_VERSION_2 | CHANGED_BY_RANKING_VERSION_2 | CHANGED_BY_WHOLE_BLOCK_CALLS
    assert same != ((type_key, params) in changed)


def test_ranking_keys_follow_the_numbers():
    def key(params: dict) -> str:
        return stable_hash(
            evaluation_identity(EvaluationSpec(type="robustness_ranking", params=params))
        )

    # one setting, two spellings: one key; a setting at its default: the default's key
    assert key({"method": "cw", "steps": 50}) == key(
        {"method": "cw", "attack_params": {"steps": 50}}
    )
    assert key({"method": "ddn"}) == key({"method": "ddn", "attack_params": {"alpha_start": 1.0}})
    # settings no shorthand spells still change the key
    assert key({"method": "ddn"}) != key({"method": "ddn", "attack_params": {"alpha_start": 0.5}})
    assert key({"method": "fmn"}) != key({"method": "fmn", "attack_params": {"steps": 50}})


def test_bumping_an_attack_version_changes_exactly_its_jobs_keys(
    tmp_path, write_suite, monkeypatch
):
    evaluations = [
        {"type": "clean"},
        {"type": "pgd", "params": {"eps": 0.1, "steps": 2}},
        {"type": "fgsm", "params": {"eps": 0.1}},
        {"type": "attacks", "params": {"eps": 0.1, "attacks": [{"type": "pgd"}]}},
        {"type": "robustness_ranking", "params": {"method": "cw"}},
        {"type": "robustness_ranking", "name": "fmn", "params": {"method": "fmn"}},
    ]
    suite = load_suite(
        write_suite(tiny_suite(tmp_path, evaluations=evaluations, sanity=False, fallbacks=False))
    )

    def keys() -> dict[str, str]:
        return {job.label: job.key for job in expand_jobs(suite, "cpu")}

    before = keys()
    monkeypatch.setattr(PGD, "version", "3")
    after_pgd = keys()
    changed = {label for label in before if before[label] != after_pgd[label]}
    assert changed == {
        f"{row} x {name}" for row in ("cnn", "rn20") for name in ("pgd_linf_0.1", "worst_linf_0.1")
    }
    monkeypatch.setattr(CarliniWagnerL2, "version", "2")
    monkeypatch.setattr(FastMinimumNormL2, "version", "2")
    after_minimal = keys()
    changed = {label for label in before if after_pgd[label] != after_minimal[label]}
    assert changed == {
        f"{row} x {name}" for row in ("cnn", "rn20") for name in ("robustness_ranking", "fmn")
    }
    monkeypatch.setattr(PGD, "version", "2")  # back to the versions: back to the old keys
    monkeypatch.setattr(CarliniWagnerL2, "version", "1")
    monkeypatch.setattr(FastMinimumNormL2, "version", "1")
    assert keys() == before
