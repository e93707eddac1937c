"""The incomplete-optimization indicator (Pintor et al.'s third): per-example loss traces of
our PGD, and a flag when the attack stops while the loss of most examples it left robust is
still climbing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.attacks.base import AttackContext, LossTraces
from benchmark.attacks.losses import logit_margin
from benchmark.attacks.pgd import run_pgd
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.trust.optimization import (
    INCOMPLETE_OPTIMIZATION,
    MIN_UNFINISHED,
    incomplete_optimization,
    unfinished,
)

CPU = torch.device("cpu")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STEPS = torch.arange(20, dtype=torch.float32)


def test_unfinished_means_still_descending_and_on_course_to_cross_zero():
    """Margin traces (negative = misclassified): a straight descent that would reach zero
    within as many steps again is unfinished; one that has flattened out, one far from zero,
    a flat one and one that stopped early are not."""
    traces = torch.stack(
        [
            1.5 - 0.05 * STEPS,  # ends at 0.55, falling 0.05 a step: below 0 in 11 more
            0.5 + 1.5 * torch.exp(-STEPS / 2),  # flattened out long before the end
            10.0 - 0.01 * STEPS,  # still falling, but 20 more steps leave it near 9.6
            torch.full_like(STEPS, 0.7),  # no progress at all (the gradient checks' business)
            1.5 - 0.05 * STEPS + 0.03 * (STEPS % 2),  # zig-zag, but its best keeps falling
            torch.cat([1.0 - 0.1 * STEPS[:10], torch.full((10,), float("nan"))]),  # stopped
        ]
    )
    assert unfinished(traces).tolist() == [True, False, False, False, True, False]
    # a one-step attack (FGSM) has no end to speak of
    assert not unfinished(traces[:, :1]).any()


def test_the_flag_needs_most_robust_examples_and_a_few_of_them():
    assert incomplete_optimization({}) is None
    assert incomplete_optimization({"pgd": {"traced": 0, "unfinished": 0}}) is None
    few = incomplete_optimization(
        {"pgd": {"traced": MIN_UNFINISHED - 1, "unfinished": MIN_UNFINISHED - 1}}
    )
    assert few is not None and not few["failed"]
    some = incomplete_optimization({"pgd": {"traced": 100, "unfinished": 20}})
    assert some is not None and not some["failed"] and some["pgd_unfinished_pct"] == 20
    most = incomplete_optimization(
        {"a": {"traced": 10, "unfinished": 0}, "b": {"traced": 10, "unfinished": 9}}
    )
    assert most is not None and most["failed"] and most["b_unfinished"] == 9


def test_pgd_records_one_trace_row_per_example(trained):
    model, data = trained
    x, y = data.x[:32], data.y[:32]
    traces = LossTraces()
    ctx = AttackContext(
        model=model,
        norm="Linf",
        eps=0.1,
        device=CPU,
        seed=0,
        batch_size=32,
        randomized=False,
        eot_samples=1,
        generator=torch.Generator().manual_seed(0),
        loss_traces=traces,
    )
    x_adv = run_pgd(
        x,
        y,
        ctx,
        steps=7,
        step_size=0.03,
        restarts=1,
        start_random=False,
        loss="ce",
        targeted=False,
        early_stop=True,
    )
    assert traces.values is not None and traces.values.shape == (32, 7)
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
        first = logit_margin(model(x), y)
    # every example that was never misclassified took every step; the first entry is the
    # margin at the clean image (no random start)
    complete = ~torch.isnan(traces.values).any(1)
    assert complete[robust].all()
    torch.testing.assert_close(traces.values[:, 0], first)
    assert (traces.values[robust] > 0).all()  # robust: never misclassified on the way


def pgd(model, data, **params):
    entry = EVALUATIONS.get("pgd")
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=False)
    spec = entry.params_model.model_validate({"eps": 0.1, "n_examples": 200, **params})
    return entry.obj(spec).run(model, data, ctx)


def test_a_step_size_far_too_small_is_flagged_and_the_default_is_not(trained):
    model, data = trained
    weak = pgd(model, data, steps=20, step_size=0.0005)
    assert INCOMPLETE_OPTIMIZATION in weak.extras["flags"]
    numbers = weak.extras["checks"][INCOMPLETE_OPTIMIZATION]
    assert numbers["failed"] and numbers["pgd_unfinished_pct"] >= 50
    converged = pgd(model, data, steps=20)
    assert INCOMPLETE_OPTIMIZATION not in converged.extras.get("flags", [])
    # the weak attack left more robust (what the flag warns about)
    assert weak.metrics["robust_acc_pct"] > converged.metrics["robust_acc_pct"]


def test_randomized_models_are_not_traced(trained):
    model, data = trained
    entry = EVALUATIONS.get("pgd")
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=True)
    params = {"eps": 0.1, "n_examples": 20, "steps": 10, "step_size": 0.0005, "n_samples": 2}
    spec = entry.params_model.model_validate({**params, "eot_samples": 2})
    result = entry.obj(spec).run(model, data, ctx)
    assert result.extras["loss_traces"]["pgd"] == {"traced": 0, "unfinished": 0}
    assert INCOMPLETE_OPTIMIZATION not in result.extras.get("flags", [])


def test_the_eps_sweep_checks_every_budget(trained):
    model, data = trained
    entry = EVALUATIONS.get("eps_sweep")
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=False)
    params = {
        "eps": [0.05, 0.1],
        "n_examples": 100,
        "attack": {"type": "pgd", "params": {"steps": 20, "step_size": 0.0005}},
    }
    result = entry.obj(entry.params_model.model_validate(params)).run(model, data, ctx)
    assert set(result.extras["loss_traces"]) == {"pgd@0.05", "pgd@0.1"}
    assert INCOMPLETE_OPTIMIZATION in result.extras["flags"]


@pytest.mark.skipif(
    not (DATA / "weights").is_dir(),
    reason=f"../shared/data is absent ({DATA}): the real checkpoints and CIFAR-10 live there",
)
def test_real_robust_checkpoint_no_false_alarm_and_a_weak_attack_flagged():
    """The real adversarially trained resnet4b: PGD-20 at its default step size raises
    nothing; the same PGD with a step size ten times too small is flagged."""
    from benchmark.datasets import load_dataset
    from models import build_model, load_checkpoint
    from tests.test_pretrained_architectures import CASES, CROWN_RESNET

    case = next(c for c in CASES if c.key == "resnet4b")
    model = build_model("resnet4b", case.params, CROWN_RESNET)
    load_checkpoint(model, DATA / "weights" / case.file)
    data = load_dataset("cifar10", "test", root=str(DATA))
    model.eval()
    converged = pgd(model, data, eps="8/255", steps=20, n_examples=100)
    assert converged.extras["loss_traces"]["pgd"]["traced"] >= 10  # robust examples exist
    assert INCOMPLETE_OPTIMIZATION not in converged.extras.get("flags", [])
    weak = pgd(model, data, eps="8/255", steps=20, step_size="1/2550", n_examples=100)
    assert INCOMPLETE_OPTIMIZATION in weak.extras["flags"]
