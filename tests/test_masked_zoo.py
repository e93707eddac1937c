"""The masked-wrapper zoo (tests/masked_zoo.py) against the sanity indicators: every wrapper
raises at least the flags that name its trick, the standard and the robust model none, and no
wrapper crashes an attack (a forward that cuts the graph used to end the run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.evaluations import EVALUATIONS, EvalContext
from tests.masked_zoo import masked_zoo

CPU = torch.device("cpu")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# wrapper -> flags it must raise (more may fire: e.g. every gradient trick also makes the
# unbounded attack fail)
EXPECTED = {
    "logit_scaling": {"degenerate_gradients", "unbounded_attack_fails"},
    "quantized": {"degenerate_gradients", "unbounded_attack_fails"},
    "jpeg_like": {"degenerate_gradients", "unbounded_attack_fails"},
    "thermometer": {"degenerate_gradients", "unbounded_attack_fails"},
    "undeclared_noise": {"undeclared_randomness", "unstable_predictions"},
    "random_resize_pad": {"undeclared_randomness", "unstable_predictions"},
    "detach_no_graph": {"unavailable_gradients", "unbounded_attack_fails"},
    "detach_with_graph": {"degenerate_gradients", "unbounded_attack_fails"},
    "detach_decoy": {"unavailable_gradients"},
    "one_hot": {"unavailable_gradients", "unbounded_attack_fails"},
    "one_hot_decoy": {"unavailable_gradients"},
}


def sanity(model: torch.nn.Module, data, randomized: bool = False):
    entry = EVALUATIONS.get("sanity")
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=randomized)
    return entry.obj(entry.params_model.model_validate({})).run(model, data, ctx)


def pgd_accuracy(model: torch.nn.Module, data, eps: float = 0.1) -> float:
    entry = EVALUATIONS.get("pgd")
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=False)
    result = entry.obj(entry.params_model.model_validate({"eps": eps, "steps": 10})).run(
        model, data.subset(100, seed=0), ctx
    )
    return result.metrics["robust_acc_pct"]


@pytest.fixture(scope="module")
def robust(tmp_path_factory):
    """small_cnn adversarially trained on digits (PGD-AT, Linf 0.1, 5 steps, 15 epochs;
    measured: 76 % clean, 49 % under PGD-10 vs 20 % for the standard model; about 20 s)."""
    from benchmark.datasets import load_dataset
    from models.training import TrainingJob, train_or_load

    job = TrainingJob(
        "small_cnn",
        {"width": 1.0},
        "pgd_at",
        {
            "epochs": 15,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 0.01,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "eps": 0.1,
            "step_size": 0.03,
            "attack_steps": 5,
        },
        {"dataset": "digits"},
        seed=0,
    )
    model, _ = train_or_load(
        job,
        load_dataset("digits", "train"),
        None,
        tmp_path_factory.mktemp("robust"),
        CPU,
        progress=False,
    )
    return model.eval()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_masked_wrapper_is_flagged(trained, name):
    model, data = trained
    wrapper = masked_zoo(model, 64, 10)[name]
    flags = set(sanity(wrapper, data).extras["flags"])
    assert EXPECTED[name] <= flags, (name, flags)
    pgd_accuracy(wrapper, data)  # runs to the end, whatever the gradient


def test_the_decoy_fools_pgd_and_the_gradient_check_says_so(trained):
    """The trick of the trust issue: PGD reports almost the clean accuracy on a standard
    model; only the finite-difference check shows the gradient is not the model's."""
    model, data = trained
    decoy = masked_zoo(model, 64, 10)["detach_decoy"]
    assert pgd_accuracy(decoy, data) > pgd_accuracy(model, data) + 40
    check = sanity(decoy, data).extras["checks"]["unavailable_gradients"]
    assert check["failed"] and not check["graph_cut"] and check["mismatch_pct"] > 90


def test_the_unbounded_attack_starts_from_the_clean_image(trained):
    """Uniform noise (what a random start at eps = 1 is) misclassifies most digits by
    itself; a zero-gradient model must not pass the unbounded check thanks to it."""
    model, data = trained
    result = sanity(masked_zoo(model, 64, 10)["detach_with_graph"], data)
    numbers = result.extras["checks"]["unbounded_attack_fails"]
    assert numbers["noise_only_accuracy_pct"] < 30
    assert numbers["accuracy_at_eps_1_pct"] > 90 and numbers["failed"]


def test_the_standard_and_the_robust_model_raise_nothing(trained, robust):
    model, data = trained
    assert sanity(model, data).extras["flags"] == []
    assert sanity(robust, data).extras["flags"] == []
    assert pgd_accuracy(robust, data) > pgd_accuracy(model, data) + 20  # it is robust


@pytest.mark.skipif(
    not (DATA / "weights").is_dir(),
    reason=f"../shared/data is absent ({DATA}): the real checkpoints and CIFAR-10 live there",
)
@pytest.mark.parametrize("key", ["resnet20", "resnet4b"])
def test_no_false_alarm_on_real_checkpoints(key):
    """Zero false alarms on the real standard ResNet-20 and the adversarially trained
    resnet4b, on 100 real CIFAR-10 test images."""
    from benchmark.datasets import load_dataset
    from models import build_model, load_checkpoint
    from tests.test_pretrained_architectures import AKAMASTER, CASES, CROWN_RESNET

    case = next(c for c in CASES if c.key == key)
    info = AKAMASTER if key == "resnet20" else CROWN_RESNET
    model = build_model(key, case.params, info)
    load_checkpoint(model, DATA / "weights" / case.file)
    data = load_dataset("cifar10", "test", root=str(DATA)).subset(100, seed=0)
    result = sanity(model.eval(), data)
    assert result.extras["flags"] == [], result.extras["checks"]


def adaptive(model: torch.nn.Module, data, surrogates=None, **params):
    entry = EVALUATIONS.get("adaptive")
    defaults = {
        "eps": 0.1,
        "n_examples": 50,
        "whitebox": {"type": "pgd", "params": {"steps": 20}},
        "decision_based": {"type": "hopskipjump", "params": {"steps": 8}},
    }
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=False)
    ctx.surrogates = surrogates or {}
    return entry.obj(entry.params_model.model_validate({**defaults, **params})).run(
        model, data, ctx
    )


@pytest.mark.parametrize(
    ("name", "fallbacks"),
    [
        ("logit_scaling", ["pgd_dlr", "hopskipjump"]),
        ("detach_decoy", ["pgd_dlr", "hopskipjump"]),
        ("one_hot", ["pgd_dlr", "hopskipjump"]),
        ("undeclared_noise", ["eot", "pgd_dlr", "hopskipjump"]),
    ],
)
def test_adaptive_fallbacks_find_what_pgd_misses(trained, name, fallbacks):
    """Each masked wrapper keeps its indicators' flags, runs the fallbacks they call for,
    and ends far below plain PGD's number on the same examples (the truth, the wrapped
    model's own PGD accuracy, is about 20 %)."""
    model, data = trained
    wrapper = masked_zoo(model, 64, 10)[name]
    result = adaptive(wrapper, data)
    assert result.extras["fallbacks"] == fallbacks
    assert result.extras["flags"]
    plain = pgd_accuracy(wrapper, data.subset(50, seed=0))
    assert result.metrics["robust_acc_pct"] < plain - 25, (result.metrics, plain)
    broken = result.records["broken_by"]
    clean = result.records["clean_correct"].to_numpy(bool)
    robust = result.records["robust"].to_numpy(bool)
    assert ((broken != "") == (clean & ~robust)).all()  # every counted break has its cause
    assert sum(result.extras["broken_by"].values()) == int((clean & ~robust).sum())
    if result.extras["n_silent_success"]:  # noisy models: attack verdicts fresh passes deny
        assert "silent_success" in result.extras["flags"]


def test_adaptive_runs_no_fallback_on_a_model_with_working_gradients(trained):
    model, data = trained
    result = adaptive(model, data)
    assert result.extras["fallbacks"] == [] and "flags" not in result.extras
    assert set(result.records["broken_by"]) <= {"", "whitebox"}
    assert result.metrics["subset_clean_acc_pct"] >= result.metrics["robust_acc_pct"]


class Dynamic(torch.nn.Module):
    """A 'dynamic defense': its forward calls autograd (one gradient step on its input)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
            return self.net(x)  # prediction passes: no autograd to call
        probe = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.net(probe).logsumexp(1).sum(), probe)
        return self.net(x - 0.01 * grad.sign())


def autoattack_flags(model: torch.nn.Module, data) -> list[str]:
    entry = EVALUATIONS.get("autoattack")
    params = {"eps": 0.1, "version": "custom", "attacks_to_run": ["apgd-ce"], "n_examples": 16}
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=False)
    result = entry.obj(entry.params_model.model_validate(params)).run(model, data, ctx)
    return result.extras.get("flags", [])


def test_autoattack_warnings_become_flags_on_the_row(trained, capsys):
    """AutoAttack's own checks warn on stderr without the model's name; here they become
    the row's flags, and its never-reset dynamic-defense counter does not leak to the next
    model."""
    model, data = trained
    zoo = masked_zoo(model, 64, 10)
    assert "autoattack_randomized" in autoattack_flags(zoo["undeclared_noise"], data)
    assert "autoattack_dynamic_defense" in autoattack_flags(Dynamic(model), data)
    assert autoattack_flags(model, data) == []
    assert "seems" not in capsys.readouterr().err  # nothing printed without a model name


@pytest.mark.parametrize("name", ["quantized", "jpeg_like", "thermometer"])
def test_bpda_finds_what_a_declared_staircase_hides(trained, name):
    """Preprocessings that are staircases (rounding, a coarse codec, thermometer codes) keep
    their apparent robustness against every gradient and label-only fallback; declared with
    ``bpda_forward``, the adaptive evaluation attacks through the approximation and breaks
    far more than plain PGD. (Rounding to 4 levels does remove perturbations of 0.1 from
    pixels far from a threshold, so that wrapper is truly more robust than its network.)"""
    model, data = trained
    wrapper = masked_zoo(model, 64, 10)[name]
    result = adaptive(wrapper, data, bpda={"type": "bpda", "params": {"steps": 20}})
    assert "bpda" in result.extras["fallbacks"]
    assert result.extras["broken_by"]["bpda"] > 0
    plain = pgd_accuracy(wrapper, data.subset(50, seed=0))
    assert result.metrics["robust_acc_pct"] < plain - 25, (result.metrics, plain)


def test_bpda_is_plain_pgd_on_a_model_that_declares_nothing(trained):
    from benchmark.attacks.bpda import bpda_forward_of

    model, data = trained
    assert bpda_forward_of(model) is None
    bpda = EVALUATIONS.get("bpda")
    pgd = EVALUATIONS.get("pgd")
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=False)
    subset = data.subset(50, seed=0)
    common = {"eps": 0.1, "steps": 10}
    ours = bpda.obj(bpda.params_model.model_validate(common)).run(model, subset, ctx)
    plain = pgd.obj(pgd.params_model.model_validate(common)).run(model, subset, ctx)
    # the same iterates: a separate attack label only reseeds the random start
    assert abs(ours.metrics["robust_acc_pct"] - plain.metrics["robust_acc_pct"]) <= 10


def test_transfer_failure_is_flagged_where_white_box_attacks_are_misled(trained, robust):
    """A surrogate with honest gradients (here the unwrapped network) breaks what every
    white-box attack on the decoy missed; on the standard and the robust model the transfer
    attack finds nothing the white-box attack did not, and no flag is raised."""
    model, data = trained
    transfer = {"type": "transfer", "params": {"surrogate": "standard", "steps": 20}}
    surrogates = {"standard": model}
    decoy = masked_zoo(model, 64, 10)["detach_decoy"]
    fooled = adaptive(decoy, data, surrogates, transfer=transfer)
    assert "transfer_failure" in fooled.extras["flags"]
    assert fooled.extras["broken_by"]["transfer"] >= 3
    for honest in (model, robust):
        result = adaptive(honest, data, surrogates, transfer=transfer)
        assert "flags" not in result.extras, result.extras
        assert result.extras["fallbacks"] == []


def test_without_a_white_box_a_randomness_indicator_runs_the_fallbacks_with_eot(trained):
    """The suite's automatic step has no white-box attack of its own: on a model with
    undeclared noise the EOT fallbacks must still run, or the step would attack nothing."""
    model, data = trained
    noisy = masked_zoo(model, 64, 10)["undeclared_noise"]
    result = adaptive(noisy, data, whitebox=None)
    assert result.extras["fallbacks"][0] == "eot"
    assert result.extras["broken_by"]["scale_invariant"] > 0
    assert result.metrics["robust_acc_pct"] < pgd_accuracy(noisy, data.subset(50, seed=0)) - 25
