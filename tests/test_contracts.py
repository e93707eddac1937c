"""Contract tests over every registered attack and evaluation type.

The cases are generated from the registries (:data:`benchmark.attacks.ATTACKS`,
:data:`benchmark.evaluations.EVALUATIONS`), so a newly registered entry -- a plugin's
included -- is covered automatically. Each entry needs small parameters declared in a table
below (``FIXED_EPS_PARAMS``, ``MINIMAL_NORM_PARAMS``, ``EVALUATION_PARAMS``): an entry
without a row fails (:func:`test_every_registered_entry_declares_how_it_is_exercised`), as
does its own contract case. Entries that are deliberately broken test doubles of other test
modules are listed, with the reason, in ``EXEMPT``.

Fixed-eps attacks, for every norm they support: candidates have the input's shape, dtype and
device, are finite, inside [0, 1] and inside the eps-ball; the model (state_dict, training
flags, requires_grad flags, gradients) and the inputs are unchanged; the output is a
function of the context's seed and generator alone (bit-identical on a second call with the
global RNGs in another state: the evaluation re-seeds ``ctx.generator`` per block, which is
what makes sharded runs reproduce unsharded ones). Minimal-norm attacks: the same, with their
own output contract (distances finite or +inf, adversarials in [0, 1] at those distances).

Evaluations: metrics are floats, finite or NaN only where the documented condition for it
holds; records have one row per evaluated example (per cell for ``corruptions``) with an
``index`` column; the same seed gives identical metrics and records (global RNGs in another
state); model and data are unchanged.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.attacks import ATTACKS, AttackContext
from benchmark.datasets.base import ArrayDataset
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.utils import seed_everything

CPU = torch.device("cpu")
EPS = {"Linf": 0.1, "L2": 0.5}
L1_EPS = 4.0  # AutoAttack's norm only (APGD's sparse L1 step)
TOLERANCE = (1e-5, 1e-6)  # relative, absolute: float32 rounding of x + delta
SEED = 11
SURROGATE = "self"  # the surrogate row name transfer attacks are given in these contracts

# --- how each registered entry is exercised --------------------------------------------------

# Fixed-eps attacks: key -> norm -> parameters (every norm the attack declares needs a row).
FIXED_EPS_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "pgd": {"Linf": {"steps": 3}, "L2": {"steps": 3}},
    "fgsm": {"Linf": {}, "L2": {}},
    "square": {"Linf": {"n_queries": 20}, "L2": {"n_queries": 20}},
    "autoattack": {
        norm: {"version": "custom", "attacks_to_run": ["apgd-ce"]} for norm in ("Linf", "L2", "L1")
    },
    "hopskipjump": {norm: {"steps": 2, "initial_gradient_eval_steps": 10} for norm in EPS},
    "transfer": {norm: {"surrogate": SURROGATE, "steps": 2} for norm in EPS},
    "bpda": {norm: {"steps": 2} for norm in EPS},
    # the wrapped class decides the norm: an L2 run needs an L2 attack
    "torchattacks": {
        "Linf": {"attack": "PGD", "kwargs": {"steps": 2}},
        "L2": {"attack": "PGDL2", "kwargs": {"steps": 2}},
    },
}

# Minimal-norm attacks: key -> parameters.
MINIMAL_NORM_PARAMS: dict[str, dict[str, Any]] = {
    "cw": {"binary_search_steps": 2, "steps": 10},
    "ddn": {"steps": 10},
    "fmn": {"steps": 10},
    "test_minimal_scale": {"points": 5},  # tests/test_minimal_attacks.py's plugin
}

# Evaluation types: key -> parameters.
EVALUATION_PARAMS: dict[str, dict[str, Any]] = {
    "clean": {"bootstrap": 20},
    "ensemble_size": {"sizes": [1, 3], "n_examples": 16},
    "ood_detection": {"dataset": "digits", "split": "val", "n_examples": 16, "n_in_examples": 16},
    "consistency": {"frames": 3, "n_examples": 16},
    "fgsm": {"eps": 0.1, "n_examples": 16},
    "pgd": {"eps": 0.1, "steps": 3, "n_examples": 16},
    "square": {"eps": 0.1, "n_queries": 20, "n_examples": 16},
    "autoattack": {
        "eps": 0.1,
        "version": "custom",
        "attacks_to_run": ["apgd-ce"],
        "n_examples": 16,
    },
    "torchattacks": {"eps": 0.1, "attack": "PGD", "kwargs": {"steps": 2}, "n_examples": 16},
    "attacks": {
        "eps": 0.1,
        "attacks": [{"type": "fgsm"}, {"type": "pgd", "params": {"steps": 2}}],
        "n_examples": 16,
        "batch_size": 8,  # two attack blocks
    },
    "eps_sweep": {
        "norm": "L2",
        "eps": [0.25, 0.5],
        "attack": {"type": "pgd", "params": {"steps": 2}},
        "n_examples": 16,
    },
    "robustness_ranking": {
        "method": "fmn",
        "attack_params": {"steps": 10},
        "n_bins": 2,
        "n_examples": 16,
    },
    "corruptions": {
        "corruptions": ["gaussian_noise", "contrast"],
        "severities": [1, 3],
        "n_examples": 16,
        "cache_dir": None,  # nothing written to the working tree
    },
    "sanity": {"n_examples": 16, "unbounded_steps": 5},
    "hopskipjump": {"eps": 0.1, "steps": 2, "initial_gradient_eval_steps": 10, "n_examples": 16},
    "transfer": {"eps": 0.1, "surrogate": SURROGATE, "steps": 2, "n_examples": 16},
    "bpda": {"eps": 0.1, "steps": 2, "n_examples": 16},
    "adaptive": {
        "eps": 0.1,
        "n_examples": 16,
        "fallbacks": "always",
        "whitebox": {"type": "pgd", "params": {"steps": 2}},
        "scale_invariant": {"type": "pgd", "params": {"steps": 2, "loss": "dlr"}},
        "decision_based": {"type": "hopskipjump", "params": {"steps": 2}},
        "indicators": {"unbounded_steps": 5},
    },
    "test_metric_specs_plugin": {},  # tests/test_metric_specs.py's plugin
    # tests/test_cross_model.py's plugins (their run is ordinary; their cross-model step is not)
    "test_cross_model_share": {},
    "test_cross_model_stray": {},
    "test_cross_model_clobber": {},
}

# Deliberately broken test doubles registered by other test modules: they exist to show that
# the harness catches exactly these contract violations.
EXEMPT: dict[str, str] = {
    "test_overstep": "tests/test_attacks.py: steps past eps on purpose",
    "test_nan": "tests/test_attacks.py: returns NaN on purpose",
    "test_train_mode_leak": "tests/test_sanity.py: forwards in train mode on purpose",
    "test_report_bn_leak": "tests/test_report.py: forwards in train mode on purpose",
}


def _attack_keys(family: str) -> list[str]:
    return [entry.key for entry in ATTACKS if entry.extras["family"] == family]


def _cases(registered: list[str], table: dict[str, Any]) -> list[str]:
    """Registered keys (at collection) plus the table's (entries registered by test modules
    collected later): the contract cases. EXEMPT entries are left out."""
    return sorted((set(registered) | set(table)) - set(EXEMPT))


def _registered(registry, key: str):
    if key not in registry:
        pytest.skip(f"'{key}' is not registered in this session (its module was not imported)")
    return registry.get(key)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def examples(trained) -> ArrayDataset:
    """40 test digits: 36 the model classifies correctly and 4 it gets wrong (both kinds, so
    that no metric is undefined by accident), in a fixed order."""
    model, data = trained
    with torch.no_grad():
        correct = model(data.x).argmax(1) == data.y
    right, wrong = correct.nonzero().squeeze(1), (~correct).nonzero().squeeze(1)
    assert len(wrong) >= 4, "the trained fixture got fewer than 4 test digits wrong"
    chosen = torch.cat([right[:36], wrong[:4]])
    chosen = chosen[torch.randperm(len(chosen), generator=torch.Generator().manual_seed(0))]
    return ArrayDataset(
        data.name, data.split, data.x[chosen], data.y[chosen], data.info, data.indices[chosen]
    )


@pytest.fixture
def model(trained) -> nn.Module:
    """A private copy of the trained BatchNorm CNN in eval mode, with mixed requires_grad
    flags (a frozen first layer), so that restoring them is observable."""
    copied = copy.deepcopy(trained[0]).eval()
    next(copied.parameters()).requires_grad_(False)
    for p in copied.parameters():
        p.grad = None
    return copied


# --- model-state snapshot ----------------------------------------------------------------------


def _snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [(name, m.training) for name, m in model.named_modules()],
        "requires_grad": [(name, p.requires_grad) for name, p in model.named_parameters()],
        "grads": [name for name, p in model.named_parameters() if p.grad is not None],
    }


def _assert_unchanged(model: nn.Module, before: dict[str, Any]) -> None:
    after = _snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    changed = [k for k, v in before["state"].items() if not torch.equal(v, after["state"][k])]
    assert not changed, f"state_dict entries changed: {changed}"
    assert after["training"] == before["training"], "training flags changed"
    assert after["requires_grad"] == before["requires_grad"], "requires_grad flags not restored"
    assert after["grads"] == before["grads"], f"gradients left on parameters: {after['grads']}"


def _other_global_rng_state(salt: int) -> None:
    """Put every global RNG in a different state: a seeded result must not depend on it."""
    seed_everything(1000 + salt)
    torch.rand(salt + 1)


# --- fixed-eps attacks -------------------------------------------------------------------------


def _context(model: nn.Module, norm: str, eps: float) -> AttackContext:
    return AttackContext(
        model=model,
        norm=norm,  # type: ignore[arg-type]
        eps=eps,
        device=CPU,
        seed=SEED,
        batch_size=8,
        randomized=False,
        eot_samples=1,
        generator=torch.Generator().manual_seed(SEED),
        surrogates={SURROGATE: model},  # transfer attacks craft on the model itself here
    )


FIXED_EPS_CASES = [
    (key, norm)
    for key in _cases(_attack_keys("fixed-eps"), FIXED_EPS_PARAMS)
    for norm in ("Linf", "L2", "L1")
]


@pytest.mark.parametrize(("key", "norm"), FIXED_EPS_CASES)
def test_fixed_eps_attack_contract(key, norm, model, examples):
    entry = _registered(ATTACKS, key)
    assert entry.extras["family"] == "fixed-eps"
    if norm not in entry.extras["norms"]:
        pytest.skip(f"'{key}' does not support {norm}")
    assert key in FIXED_EPS_PARAMS and norm in FIXED_EPS_PARAMS[key], (
        f"fixed-eps attack '{key}' ({norm}) has no row in FIXED_EPS_PARAMS: declare small "
        "parameters for it there"
    )
    attack = entry.obj(entry.params_model.model_validate(FIXED_EPS_PARAMS[key][norm]))
    x, y = examples.x[:8].clone(), examples.y[:8].clone()
    x_given, y_given = x.clone(), y.clone()
    before = _snapshot(model)
    eps = EPS.get(norm, L1_EPS)

    outputs = []
    for salt in (0, 1):  # one attack object, called twice: no state carried between calls
        _other_global_rng_state(salt)
        outputs.append(attack.perturb(x, y, _context(model, norm, eps)))
        assert torch.equal(x, x_given) and torch.equal(y, y_given), "input modified in place"
        _assert_unchanged(model, before)
    x_adv = outputs[0]

    assert isinstance(x_adv, torch.Tensor)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    flat = (x_adv.detach() - x).flatten(1)
    sizes = {"Linf": flat.abs().amax(1), "L2": flat.norm(dim=1), "L1": flat.abs().sum(1)}
    size = sizes[norm]
    assert (size <= eps * (1 + TOLERANCE[0]) + TOLERANCE[1]).all(), (
        f"outside the {norm} ball of {eps}: max norm {float(size.max())}"
    )
    assert torch.equal(outputs[0], outputs[1]), "same seed, different candidates"


# --- minimal-norm attacks ----------------------------------------------------------------------


@pytest.mark.parametrize("key", _cases(_attack_keys("minimal-norm"), MINIMAL_NORM_PARAMS))
def test_minimal_norm_attack_contract(key, model, examples):
    entry = _registered(ATTACKS, key)
    assert entry.extras["family"] == "minimal-norm"
    assert key in MINIMAL_NORM_PARAMS, (
        f"minimal-norm attack '{key}' has no row in MINIMAL_NORM_PARAMS: declare small "
        "parameters for it there"
    )
    attack = entry.obj(entry.params_model.model_validate(MINIMAL_NORM_PARAMS[key]))
    with torch.no_grad():
        correct = model(examples.x).argmax(1) == examples.y
    x, y = examples.x[correct][:8].clone(), examples.y[correct][:8].clone()
    x_given, y_given = x.clone(), y.clone()
    before = _snapshot(model)

    outputs = []
    for salt in (0, 1):
        _other_global_rng_state(salt)
        outputs.append(attack.distances(model, x, y))
        assert torch.equal(x, x_given) and torch.equal(y, y_given), "input modified in place"
        _assert_unchanged(model, before)
    distances, adversarials = outputs[0]

    assert distances.shape == (len(x),) and not torch.isnan(distances).any()
    assert (distances >= 0).all() and (torch.isfinite(distances) | (distances == math.inf)).all()
    assert adversarials.shape == x.shape and adversarials.dtype == x.dtype
    assert adversarials.device == x.device
    assert torch.isfinite(adversarials).all()
    assert adversarials.min() >= 0 and adversarials.max() <= 1
    found = torch.isfinite(distances)
    norms = (adversarials - x).flatten(1).norm(dim=1)
    assert torch.allclose(norms[found], distances[found], rtol=1e-5, atol=1e-6)
    assert torch.equal(adversarials[~found], x[~found])
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])


# --- evaluations -------------------------------------------------------------------------------

# When a metric may be NaN (documented in the README): metric pattern -> condition on the
# result. A NaN anywhere else, or where its condition does not hold, fails the contract.
Condition = Callable[[pd.DataFrame, str], bool]


def _all_same(correct: pd.Series) -> bool:
    return bool(correct.all() or not correct.any())


def _cells(records: pd.DataFrame) -> list[pd.DataFrame]:
    if "corruption" in records.columns:
        cells = records[records["corruption"] != "clean"]
        return [part for _, part in cells.groupby(["corruption", "severity"], observed=True)]
    return [records]


def _any_cell(test: Callable[[pd.Series], bool]) -> Condition:
    return lambda records, _metric: any(test(cell["correct"]) for cell in _cells(records))


def _suffix(metric: str) -> str:
    """``0.25_asr_pct`` (eps_sweep) -> ``@0.25``; single-eps metrics -> ``""``."""
    head = metric.partition("_")[0]
    try:
        float(head)
    except ValueError:
        return ""
    return f"@{head}"


def _no_clean_correct(records: pd.DataFrame, metric: str) -> bool:
    return not records["clean_correct"].any()


def _none_broken(records: pd.DataFrame, metric: str) -> bool:
    s = _suffix(metric)
    return not (records["clean_correct"] & ~records[f"robust{s}"]).any()


CALIBRATION_NAN: dict[str, Condition] = {
    "*auroc_pct": _any_cell(_all_same),
    "*fpr95_pct": _any_cell(_all_same),
    "*aupr_error_pct": _any_cell(lambda c: bool(c.all())),
    "*aupr_success_pct": _any_cell(lambda c: not c.any()),
    # a percentile interval is NaN when every resample is undefined: only AUROC's can be
    "auroc_pct_ci_*": lambda records, _m: True,
}
THREAT_NAN: dict[str, Condition] = {"*asr_pct": _no_clean_correct, "*mean_norm": _none_broken}
NAN_ALLOWED: dict[str, dict[str, Condition]] = {
    "clean": CALIBRATION_NAN,
    "corruptions": CALIBRATION_NAN,
    "attacks": THREAT_NAN,
    "eps_sweep": THREAT_NAN,
    "robustness_ranking": {
        "mean_dist": lambda r, _m: not np.isfinite(r.loc[r["correct"], "distance"]).any()
    },
    # fixed-eps evaluation types (one per attack) get THREAT_NAN in _nan_conditions
}


def _nan_conditions(key: str) -> dict[str, Condition]:
    if key in NAN_ALLOWED:
        return NAN_ALLOWED[key]
    attack = getattr(EVALUATIONS.get(key).obj, "attack_key", None)
    return THREAT_NAN if attack is not None else {}


def _expected_groups(key: str, records: pd.DataFrame) -> list[pd.DataFrame]:
    """Groups of records that each hold one row per evaluated example."""
    if key == "corruptions":
        return [part for _, part in records.groupby(["corruption", "severity"], observed=True)]
    if key == "ood_detection":  # its OOD rows index another data set (n_in_examples = 16)
        return [records[records["distribution"] == "in"]]
    return [records]


def _run(evaluation, model, data, salt: int):
    _other_global_rng_state(salt)
    ctx = EvalContext.for_model(model, CPU, 16, SEED, False)
    ctx.surrogates = {SURROGATE: model}
    return evaluation.run(model, data, ctx)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("key", _cases(EVALUATIONS.keys(), EVALUATION_PARAMS))
def test_evaluation_contract(key, model, examples):
    entry = _registered(EVALUATIONS, key)
    assert key in EVALUATION_PARAMS, (
        f"evaluation type '{key}' has no row in EVALUATION_PARAMS: declare small parameters "
        "for it there"
    )
    params = entry.params_model.model_validate(EVALUATION_PARAMS[key])
    evaluation = entry.obj(params)
    x_given, y_given = examples.x.clone(), examples.y.clone()
    before = _snapshot(model)

    first = _run(evaluation, model, examples, 0)
    _assert_unchanged(model, before)
    assert torch.equal(examples.x, x_given) and torch.equal(examples.y, y_given)

    # metrics: floats, finite, or NaN only where documented and its condition holds
    assert first.metrics, "no metrics"
    conditions = _nan_conditions(key)
    for metric, value in first.metrics.items():
        assert isinstance(value, float), f"{metric}: {type(value).__name__}, not float"
        assert not math.isinf(value), f"{metric} is infinite"
        if math.isnan(value):
            allowed = [c for pattern, c in conditions.items() if fnmatch.fnmatch(metric, pattern)]
            assert allowed, f"{metric} is NaN, which is documented nowhere"
            assert any(c(first.records, metric) for c in allowed), (
                f"{metric} is NaN although its documented condition does not hold"
            )

    # records: one row per evaluated example (per cell), each with its dataset index
    records = first.records
    assert isinstance(records, pd.DataFrame) and "index" in records.columns
    n_expected = min(getattr(params, "n_examples", None) or len(examples), len(examples))
    known = set(examples.indices.tolist())
    for group in _expected_groups(key, records):
        assert len(group) == n_expected, f"{len(group)} rows for {n_expected} examples"
        assert group["index"].is_unique, "an example has several rows"
        assert set(group["index"].tolist()) <= known, "rows for examples never evaluated"

    # the same seed: identical metrics and records
    second = _run(evaluation, model, examples, 1)
    _assert_unchanged(model, before)
    assert first.metrics.keys() == second.metrics.keys()
    differ = [m for m, v in first.metrics.items() if not _same(v, second.metrics[m])]
    assert not differ, f"same seed, different metrics: {differ}"
    pd.testing.assert_frame_equal(first.records, second.records, check_exact=True)


# --- coverage ----------------------------------------------------------------------------------


def test_every_registered_entry_declares_how_it_is_exercised():
    """Every attack and evaluation type registered in this session (after all test modules,
    hence their plugins, were imported) has a row in its table, or is a listed test double;
    a fixed-eps attack needs a row for every norm it supports."""
    missing = []
    for entry in ATTACKS:
        if entry.key in EXEMPT:
            continue
        if entry.extras["family"] == "fixed-eps":
            declared = FIXED_EPS_PARAMS.get(entry.key, {})
            missing += [f"{entry.key} ({n})" for n in entry.extras["norms"] if n not in declared]
        elif entry.key not in MINIMAL_NORM_PARAMS:
            missing.append(entry.key)
    missing += [e.key for e in EVALUATIONS if e.key not in EXEMPT | EVALUATION_PARAMS]
    assert not missing, f"no contract parameters declared for: {missing}"
    # and every declared row validates (a stale row fails here, not silently)
    for key, by_norm in FIXED_EPS_PARAMS.items():
        if key in ATTACKS:
            for params in by_norm.values():
                ATTACKS.get(key).params_model.model_validate(params)
    for key, params in MINIMAL_NORM_PARAMS.items():
        if key in ATTACKS:
            ATTACKS.get(key).params_model.model_validate(params)
    for key, params in EVALUATION_PARAMS.items():
        if key in EVALUATIONS:
            EVALUATIONS.get(key).params_model.model_validate(params)
