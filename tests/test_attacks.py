"""Attacks and adversarial evaluations: cross-checked against torchattacks, foolbox and the
AutoAttack package on a trained model of the offline default; eps-ball checks; EOT."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmark.attacks import ATTACKS, Attack, AttackContext, parse_eps, register_attack
from benchmark.attacks.losses import dlr
from benchmark.attacks.threat import project, valid_adversarial
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.evaluations.adversarial import AttackSpec, ThreatParams, wilson_interval, worst_case

CPU = torch.device("cpu")


def ctx(seed: int = 123, batch_size: int = 128, randomized: bool = False) -> EvalContext:
    return EvalContext(CPU, batch_size, seed, progress=False, randomized=randomized)


def robust_acc(model, data, norm, eps, attacks, seed=123, **threat) -> float:
    params = ThreatParams(norm=norm, eps=eps, **threat)
    built = [(spec["type"], AttackSpec(**spec).build(norm)) for spec in attacks]
    outcome = worst_case(model, data, built, norm, parse_eps(eps), params, ctx(seed))
    return 100.0 * outcome["robust"].float().mean().item()


def accuracy_on(model, x_adv, y) -> float:
    with torch.no_grad():
        return 100.0 * (model(x_adv).argmax(1) == y).float().mean().item()


def test_eps_parsing_and_projection():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps(0.5) == 0.5 and parse_eps("0.25") == 0.25
    for bad in ("eight", "1/0", -0.1, True):
        with pytest.raises(ValueError):
            parse_eps(bad)
    delta = torch.randn(5, 3, 4, 4)
    assert project(delta, "Linf", 0.1).abs().max() <= 0.1
    norms = project(delta, "L2", 0.5).flatten(1).norm(dim=1)
    assert torch.all(norms <= 0.5 + 1e-6)
    small = delta * 1e-3
    assert torch.equal(project(small, "L2", 0.5), small)


def test_pgd_linf_matches_torchattacks_and_foolbox(trained):
    import foolbox
    import torchattacks

    model, data = trained
    settings = {"steps": 20, "step_size": 0.0125, "random_start": False}
    ours_plain = robust_acc(
        model, data, "Linf", 0.1, [{"type": "pgd", "params": {**settings, "early_stop": False}}]
    )
    ours = robust_acc(model, data, "Linf", 0.1, [{"type": "pgd", "params": settings}])
    reference = torchattacks.PGD(model, eps=0.1, alpha=0.0125, steps=20, random_start=False)
    ta = accuracy_on(model, reference(data.x, data.y), data.y)
    _, _, success = foolbox.attacks.LinfPGD(abs_stepsize=0.0125, steps=20, random_start=False)(
        foolbox.PyTorchModel(model, bounds=(0, 1)), data.x, data.y, epsilons=0.1
    )
    fb = 100.0 * (~success).float().mean().item()
    assert 5 < ta < 60, "the test needs a model that is neither trivially robust nor broken"
    assert abs(ours_plain - ta) <= 0.3  # same algorithm, last iterate: at most one example apart
    assert abs(ours - fb) <= 2.0
    assert ours <= ours_plain + 1e-9  # keeping the first misclassified iterate never hurts


def test_pgd_l2_matches_foolbox(trained):
    import foolbox

    model, data = trained
    ours = robust_acc(
        model,
        data,
        "L2",
        0.5,
        [{"type": "pgd", "params": {"steps": 20, "step_size": 0.0625, "random_start": False}}],
    )
    _, _, success = foolbox.attacks.L2PGD(abs_stepsize=0.0625, steps=20, random_start=False)(
        foolbox.PyTorchModel(model, bounds=(0, 1)), data.x, data.y, epsilons=0.5
    )
    fb = 100.0 * (~success).float().mean().item()
    assert 5 < fb < 90
    assert abs(ours - fb) <= 2.0


def test_fgsm_weaker_than_pgd_and_sweep_monotone(trained):
    model, data = trained
    fgsm = robust_acc(model, data, "Linf", 0.1, [{"type": "fgsm"}])
    pgd = robust_acc(model, data, "Linf", 0.1, [{"type": "pgd", "params": {"steps": 20}}])
    assert fgsm >= pgd
    sweep_cls = EVALUATIONS.get("eps_sweep").obj
    params = EVALUATIONS.get("eps_sweep").params_model.model_validate(
        {"eps": ["0.2", "1/50", 0.05, 0.1], "attack": {"type": "pgd"}, "reuse_smaller_eps": False}
    )
    result = sweep_cls(params).run(model, data, ctx())
    curve = [result.metrics[f"{e}_robust_acc_pct"] for e in ("1/50", "0.05", "0.1", "0.2")]
    assert curve == sorted(curve, reverse=True), curve
    assert curve[0] > curve[-1]
    assert {"robust@1/50", "robust@0.2", "norm@0.1"} <= set(result.records.columns)


@pytest.mark.parametrize("batch_size", [7, 32, 128])
def test_worst_case_over_attacks_is_per_example_minimum(trained, batch_size):
    """The worst case breaks every example that any of its attacks breaks alone, for any
    batch size: each example's random start comes from (seed, attack, index), not from the
    batch it happens to share with the other still-robust examples."""
    model, data = trained
    attacks = [{"type": "fgsm"}, {"type": "pgd", "params": {"steps": 5, "restarts": 2}}]
    params = ThreatParams(norm="Linf", eps=0.05, batch_size=batch_size)
    built = [(a["type"], AttackSpec(**a).build("Linf")) for a in attacks]
    outcome = worst_case(model, data, built, "Linf", 0.05, params, ctx())
    after_fgsm, after_pgd = outcome["after"]["fgsm"], outcome["after"]["pgd"]
    assert torch.all(after_pgd <= after_fgsm)  # robust flags only ever go down
    assert torch.equal(outcome["robust"], after_pgd)
    for spec in attacks:
        alone = worst_case(
            model,
            data,
            [(spec["type"], AttackSpec(**spec).build("Linf"))],
            "Linf",
            0.05,
            params,
            ctx(),
        )
        assert torch.all(outcome["robust"] <= alone["robust"]), spec["type"]
    broken = outcome["clean_correct"] & ~outcome["robust"]
    assert torch.all(outcome["norm"][broken] <= 0.05 + 1e-6) and torch.all(
        outcome["norm"][broken] > 0
    )


class _ShapeRounding(torch.nn.Module):
    """A model whose logits move with the batch size, as CPU kernels chosen by shape round
    differently on another CPU: each row still depends on that row alone, but by far more
    than float rounding (0.5 logits), so any outcome that hangs on the batch size flips."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        row = x.flatten(1).sum(1, keepdim=True)
        classes = torch.arange(10, dtype=x.dtype)
        return self.net(x) + 0.5 * torch.sin(1.7 * len(x) + 13.0 * row + classes)


@pytest.mark.parametrize("batch_size", [7, 32])
def test_worst_case_holds_when_rounding_depends_on_batch_shape(trained, batch_size):
    """Worst case <= each attack alone even where a row's logits depend on the batch's size:
    every attack call and verdict has the shape it has when the attack runs alone."""
    net, data = trained
    model = _ShapeRounding(net).eval()
    attacks = [
        ("fgsm", {"type": "fgsm"}),
        ("pgd", {"type": "pgd", "params": {"steps": 3}}),
        ("pgd1", {"type": "pgd", "params": {"steps": 3, "loss": "dlr"}}),
    ]
    params = ThreatParams(norm="Linf", eps=0.05, batch_size=batch_size)

    def run(chosen):
        built = [(label, AttackSpec(**spec).build("Linf")) for label, spec in chosen]
        return worst_case(model, data, built, "Linf", 0.05, params, ctx())

    together = run(attacks)
    assert torch.equal(together["robust"], together["after"]["pgd1"])
    for label, spec in attacks:
        alone = run([(label, spec)])
        # the shape-dependent logits make this check bite: the attack does break examples
        assert (together["clean_correct"] & ~alone["robust"]).any(), label
        assert torch.all(together["robust"] <= alone["robust"]), label
        assert torch.all(together["after"][label] <= alone["robust"]), label


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_random_start_of_an_example_ignores_its_batch(norm):
    from benchmark.attacks.base import example_generators
    from benchmark.attacks.pgd import random_start

    x = torch.rand(6, 1, 4, 4)
    ids = torch.tensor([10, 3, 7, 42, 5, 8])

    def starts(rows: list[int]) -> torch.Tensor:
        actx = AttackContext(
            None, norm, 0.3, CPU, 9, 8, False, 1, torch.Generator(), ids[rows], "pgd"
        )
        return random_start(x[rows], norm, 0.3, example_generators(actx, "random_start"))

    together = starts(list(range(6)))
    for rows in ([3], [5, 3], [0, 2, 4]):
        assert torch.equal(starts(rows), together[rows])
    other_label = AttackContext(None, norm, 0.3, CPU, 9, 8, False, 1, torch.Generator(), ids, "p")
    assert not torch.equal(
        random_start(x, norm, 0.3, example_generators(other_label, "random_start")), together
    )


def check_autoattack_reproduction(trained, n: int, aa_params: dict) -> None:
    from pyautoattack import AutoAttack

    model, data = trained
    subset = data.subset(n, seed=0)
    params = ThreatParams(norm="Linf", eps=0.1)
    attack = AttackSpec(type="autoattack", params=aa_params).build("Linf")
    outcome = worst_case(
        model, subset, [("aa", attack)], "Linf", 0.1, params, ctx(seed=7, batch_size=64)
    )
    reference = AutoAttack(
        model,
        eps=0.1,
        norm="Linf",
        seed=7,
        device=CPU,
        version=aa_params["version"],
        attacks=aa_params.get("attacks_to_run"),
    )
    # one block of 64: our evaluation attacks fixed blocks of batch_size examples (so that
    # shards reproduce it), the package batches the still-robust ones; equal within a block
    x_adv, _ = reference.run_standard_evaluation(subset.x, subset.y, batch_size=64)
    with torch.no_grad():
        expected = model(x_adv).argmax(1) == subset.y
    assert torch.equal(outcome["robust"], expected)
    assert expected.sum() < outcome["clean_correct"].sum(), "the attack should break something"


def test_autoattack_reproduces_the_package_exactly(trained):
    check_autoattack_reproduction(
        trained, 64, {"version": "custom", "attacks_to_run": ["apgd-ce", "apgd-t"]}
    )


@pytest.mark.slow
def test_autoattack_standard_reproduces_the_package_exactly(trained):
    check_autoattack_reproduction(trained, 48, {"version": "standard"})


@register_attack("test_overstep", "deliberately broken: steps twice past eps")
class _Overstep(Attack):
    def perturb(self, x, y, ctx: AttackContext):
        return (x + 2 * ctx.eps * torch.sign(torch.randn_like(x))).clamp(0, 1)


@register_attack("test_nan", "deliberately broken: returns NaN")
class _ReturnsNaN(Attack):
    def perturb(self, x, y, ctx: AttackContext):
        return torch.full_like(x, float("nan"))


@pytest.mark.parametrize("broken", ["test_overstep", "test_nan"])
def test_invalid_adversarial_examples_are_caught_not_counted(trained, broken):
    model, data = trained
    entry = EVALUATIONS.get("attacks")
    params = entry.params_model.model_validate({"eps": 0.05, "attacks": [{"type": broken}]})
    result = entry.obj(params).run(model, data, ctx())
    n_correct = result.extras["n_clean_correct"]
    assert result.extras["n_invalid"] == n_correct > 0
    assert result.metrics["robust_acc_pct"] == pytest.approx(100.0 * n_correct / len(data))
    assert result.metrics["asr_pct"] == 0
    assert result.records["invalid"].sum() == n_correct


def test_valid_adversarial_checks_range_ball_and_nan():
    x = torch.full((4, 1, 2, 2), 0.5)
    candidates = x.clone()
    candidates[1] += 0.2  # outside eps = 0.1
    candidates[2, 0, 0, 0] = 1.2  # outside [0, 1]
    candidates[3, 0, 0, 0] = float("nan")
    assert valid_adversarial(x, candidates, "Linf", 0.1).tolist() == [True, False, False, False]


class _NoisyLogits(torch.nn.Module):
    """A randomized model: a linear map plus fresh noise on every call."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)
        self.randomized = True
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x.flatten(1)) + 0.01 * torch.randn(len(x), 10)


def test_randomized_models_get_eot_and_mean_predictions(trained):
    _, data = trained
    model = _NoisyLogits().eval()
    subset = data.subset(16, seed=1)
    with torch.no_grad():  # label every example with the model's own prediction: all get attacked
        labels = model.linear(subset.x.flatten(1)).argmax(1)
    subset = dataclasses.replace(subset, y=labels)
    model.calls = 0
    params = ThreatParams(norm="Linf", eps=0.05, eot_samples=7, n_samples=5)
    attack = AttackSpec(type="pgd", params={"steps": 2, "restarts": 1}).build("Linf")
    context = ctx(batch_size=64, randomized=True)
    worst_case(model, subset, [("pgd", attack)], "Linf", 0.05, params, context)
    # EOT: 2 steps x 7 samples per batch for the attack; prediction passes are multiples of 5
    n_attacked_batches = 1
    attack_calls = 2 * 7 * n_attacked_batches  # one restart: no check of the last iterate
    prediction_calls = model.calls - attack_calls
    assert prediction_calls == 3 * 5  # clean, post-attack check, final re-evaluation


def test_dlr_loss_is_shift_and_scale_invariant():
    logits = torch.randn(6, 10)
    y = torch.randint(0, 10, (6,))
    target = (y + 1) % 10
    for t in (None, target):
        assert torch.allclose(dlr(3.0 * logits + 2.0, y, t), dlr(logits, y, t), atol=1e-5)


def test_wilson_interval_matches_closed_form():
    k, n, z = 37, 120, 1.959963984540054
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(center - half, abs=1e-9) and high == pytest.approx(
        center + half, abs=1e-9
    )


def test_suite_level_attack_types_validate(write_suite, tmp_path):
    from benchmark.suite import SuiteError, load_suite
    from tests.conftest import tiny_suite

    suite = tiny_suite(tmp_path)
    suite["evaluations"] = [
        {"type": "pgd", "params": {"eps": "8/255", "steps": 3}},
        {
            "type": "torchattacks",
            "params": {"eps": "8/255", "attack": "MIFGSM", "kwargs": {"steps": 2}},
        },
        {"type": "eps_sweep", "params": {"eps": ["1/255", "2/255"], "attack": {"type": "fgsm"}}},
    ]
    loaded = load_suite(write_suite(suite))
    assert loaded.evaluations[0].params["eps"] == "8/255"
    suite["evaluations"] = [{"type": "torchattacks", "params": {"eps": 0.1, "attack": "Nope"}}]
    with pytest.raises(SuiteError, match="unknown torchattacks attack 'Nope'"):
        load_suite(write_suite(suite))
    suite["evaluations"] = [
        {"type": "torchattacks", "params": {"eps": 0.1, "attack": "PGD", "kwargs": {"stepz": 2}}}
    ]
    with pytest.raises(SuiteError, match=r"PGD does not take \['stepz'\]"):
        load_suite(write_suite(suite))
    suite["evaluations"] = [{"type": "pgd", "params": {"eps": "8/two"}}]
    with pytest.raises(SuiteError, match=r"evaluations\[0\]\.params\.eps"):
        load_suite(write_suite(suite))


def test_attack_evaluations_run_from_a_suite(write_suite, tmp_path):
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite
    from tests.conftest import tiny_suite

    suite = tiny_suite(tmp_path)
    suite["evaluations"] = [
        {"type": "fgsm", "params": {"eps": "8/255"}},
        {"type": "torchattacks", "params": {"eps": "8/255", "attack": "FGSM"}},
    ]
    summary = run_suite(load_suite(write_suite(suite)), progress=False, log=lambda _m: None)
    board = summary.leaderboard
    for column in (
        "fgsm_linf_8/255_robust_acc_pct",
        "fgsm_linf_8/255_robust_acc_pct_ci_low",
        "torchattacks_linf_8/255_robust_acc_pct",
    ):
        assert column in board.columns
    # our FGSM and torchattacks' FGSM are the same algorithm
    assert list(board["fgsm_linf_8/255_robust_acc_pct"]) == list(
        board["torchattacks_linf_8/255_robust_acc_pct"]
    )
    assert "test_overstep" in ATTACKS
