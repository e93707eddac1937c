"""Training recipes: each test checks what makes a recipe that recipe, on the offline default
(digits, a narrow small_cnn, one or two epochs); a shared test checks that every recipe
resumes an interrupted run to identical weights."""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.datasets import load_dataset
from benchmark.datasets.base import ArrayDataset
from benchmark.datasets.cifar10 import CIFAR10_INFO
from benchmark.errors import BenchmarkError
from benchmark.metrics.robustness import robustness_bins
from benchmark.utils import file_sha256
from models import build_model
from models.training import (
    RECIPES,
    TrainContext,
    TrainingJob,
    checkpoint_path,
    train_or_load,
)
from models.training.ar_adals import (
    AdaptiveLabelSmoothingLoop,
    ArAdaLSParams,
    example_robustness,
    train_ar_adals,
)
from models.training.label_smoothing import (
    LabelSmoothingLoop,
    LabelSmoothingParams,
    smooth_targets,
    soft_cross_entropy,
)
from models.training.loop import BatchState, loop_params
from models.training.noise import GaussianNoiseLoop, NoiseParams, train_gaussian_noise
from models.training.pgd_at import PGDATLoop, PGDATParams
from models.training.sam_swa import SamSwaLoop, SamSwaParams, sam_swa_lr
from models.training.standard import StandardParams
from models.training.trades import TradesLoop, TradesParams, trades_adversarial, trades_kl
from tests.conftest import interrupt_in_second_epoch

CPU = torch.device("cpu")
FAST = {
    "epochs": 1,
    "batch_size": 128,
    "optimizer": "adam",
    "lr": 0.01,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup_epochs": 0,
    "augment": "none",
}
ATTACK = {"eps": 0.1, "step_size": 0.03, "attack_steps": 3}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "val")


@pytest.fixture(scope="module")
def small_digits(digits):
    """384 training digits: enough to exercise a recipe, fast enough for adversarial ones."""
    train, val = digits
    return train.subset(384, seed=0), val


def fresh_model(train, seed: int = 0):
    torch.manual_seed(seed)
    return build_model("small_cnn", {"width": 0.25}, train.info)


def context(tmp_path, seed: int = 1) -> TrainContext:
    return TrainContext(CPU, seed, tmp_path / "state.pt", progress=False)


def params_of(cls, **extra):
    return cls.model_validate({**FAST, **extra})


def record_inputs(model):
    """Forward pre-hook log of (training mode, input) for every call of ``model``."""
    seen: list[tuple[bool, torch.Tensor]] = []
    model.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].clone())))
    return seen


# ----- gaussian_noise ------------------------------------------------------------------------


def test_gaussian_noise_is_applied_in_training_only(tmp_path, small_digits):
    train, val = small_digits
    sigma = 0.3

    class Spy(GaussianNoiseLoop):
        clean: ClassVar[list[torch.Tensor]] = []

        def train_step(self, model, optimizer, x, y, state):
            self.clean.append(x.clone())
            return super().train_step(model, optimizer, x, y, state)

    model = fresh_model(train)
    seen = record_inputs(model)
    Spy(params_of(NoiseParams, sigma=sigma), context(tmp_path)).run(model, train, val)
    trained = [x for training, x in seen if training]
    evaluated = [x for training, x in seen if not training]
    assert len(trained) == len(Spy.clean) == math.ceil(len(train) / 128)
    noise = torch.cat(
        [(seen_x - clean).flatten() for seen_x, clean in zip(trained, Spy.clean, strict=True)]
    )
    assert abs(noise.std().item() - sigma) < 0.01 and abs(noise.mean().item()) < 0.01
    assert torch.equal(torch.cat(evaluated), val.x), "validation must see clean inputs"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(val.x[:16]), model(val.x[:16])), "no noise at evaluation"


def first_conv_noise(model_key: str, model_params: dict, sigma: float, tmp_path) -> torch.Tensor:
    """Train ``model_key`` for one step on zero images with ``gaussian_noise(sigma)`` and return
    the noise the first convolution saw, in [0, 1] pixel units (its input minus the
    normalized zero image, times the normalization std)."""
    n = 64
    zeros = ArrayDataset(
        "cifar10",
        "train",
        torch.zeros(n, 3, 32, 32),
        torch.arange(n) % 10,
        CIFAR10_INFO,
        torch.arange(n),
    )
    torch.manual_seed(0)
    model = build_model(model_key, {"width": 0.25, **model_params}, CIFAR10_INFO)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    seen = record_inputs(conv)
    params = params_of(NoiseParams, sigma=sigma, batch_size=n)
    train_gaussian_noise(model, zeros, None, params, context(tmp_path))
    trained = [x for training, x in seen if training]
    assert len(trained) == 1, "one training step, no evaluation pass"
    mean, std = model.mean, model.std
    return (trained[0] - (0 - mean) / std) * std


@pytest.mark.parametrize(
    ("model_key", "model_params"),
    [
        ("kap_resnet20", {"sigma": 0.1}),  # the model's own input noise is the only source
        ("nt_resnet20", {"sigma": 0.1}),
        ("kap_resnet20", {"sigma": 0.0}),  # no input noise in the model: the recipe adds it
        ("resnet20", {}),  # plain model: Gaussian-noise augmentation by the recipe
    ],
)
def test_gaussian_noise_reaches_the_input_once(tmp_path, model_key, model_params):
    sigma = 0.1
    noise = first_conv_noise(model_key, model_params, sigma, tmp_path)
    # 196k values: the std estimate is within ~0.3% of sigma; twice-applied noise would give
    # sqrt(2) * sigma = 0.141
    assert noise.std().item() == pytest.approx(sigma, rel=0.03)
    assert abs(noise.mean().item()) < 0.005
    # version 1 added the recipe's noise on top of the model's: its checkpoints are not reused
    assert RECIPES.get("gaussian_noise").extras["version"] == "2"


def test_gaussian_noise_refuses_a_sigma_other_than_the_models(tmp_path):
    model = build_model("kap_resnet20", {"width": 0.25, "sigma": 0.1}, CIFAR10_INFO)
    data = ArrayDataset(
        "cifar10",
        "train",
        torch.zeros(4, 3, 32, 32),
        torch.zeros(4, dtype=torch.long),
        CIFAR10_INFO,
        torch.arange(4),
    )
    with pytest.raises(BenchmarkError, match=r"recipe sigma 0\.2 differs .*\(sigma 0\.1\)"):
        train_gaussian_noise(
            model, data, None, params_of(NoiseParams, sigma=0.2), context(tmp_path)
        )


# ----- label_smoothing -----------------------------------------------------------------------


def test_label_smoothing_targets_sum_to_one_with_the_right_mass(tmp_path, digits):
    y = torch.tensor([0, 3, 9])
    eps, z = 0.1, 10
    targets = smooth_targets(y, eps, z)
    assert torch.allclose(targets.sum(1), torch.ones(3))
    assert torch.allclose(targets[torch.arange(3), y], torch.full((3,), 1 - eps + eps / z))
    off = targets.clone()
    off[torch.arange(3), y] = 0
    assert torch.allclose(off.sum(1), torch.full((3,), eps * (z - 1) / z))
    logits = torch.randn(3, z)
    expected = F.cross_entropy(logits, y, label_smoothing=eps)
    assert torch.allclose(soft_cross_entropy(logits, targets), expected)

    train, _ = digits
    model = fresh_model(train)
    recipe = LabelSmoothingLoop(params_of(LabelSmoothingParams), context(tmp_path))
    x, y = train.x[:32], train.y[:32]
    state = BatchState(0, 0, torch.arange(32), torch.Generator())
    loss, logits = recipe.batch_loss(model, x, y, state)
    assert torch.allclose(loss, F.cross_entropy(logits, y, label_smoothing=0.1))


# ----- pgd_at --------------------------------------------------------------------------------


def test_pgd_at_trains_on_adversarial_batches(tmp_path, small_digits):
    train, val = small_digits
    records: list[tuple[torch.Tensor, torch.Tensor, float, float]] = []

    class Spy(PGDATLoop):
        def adversarial(self, model, x, y, generator, mode=None):
            x_adv = super().adversarial(model, x, y, generator, mode)
            if model.training:  # training batches only (not the robust validation)
                model.eval()
                with torch.no_grad():
                    clean = F.cross_entropy(model(x), y).item()
                    adv = F.cross_entropy(model(x_adv), y).item()
                model.train()
                records.append((x, x_adv, clean, adv))
            return x_adv

    model = fresh_model(train)
    seen = record_inputs(model)
    params = params_of(PGDATParams, epochs=2, early_stopping=True, val_examples=90, **ATTACK)
    loop_ = Spy(params, context(tmp_path))
    history = loop_.run(model, train, val)["history"]
    # the update's forward pass: training mode, and (unlike the attack's) no input gradient
    trained_on = [x for training, x in seen if training and not x.requires_grad]
    assert len(records) == len(trained_on) == 2 * math.ceil(len(train) / 128)
    for (x, x_adv, clean, adv), used in zip(records, trained_on, strict=True):
        assert torch.equal(used, x_adv), "the update must use the adversarial batch"
        assert adv > clean, (adv, clean)
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # early stopping: the returned weights are the best robust-validation epoch's
    best = max(history, key=lambda r: r["val_robust_acc"])
    assert loop_.best["epoch"] == best["epoch"]
    assert loop_.robust_accuracy(model, val) == pytest.approx(best["val_robust_acc"])


def batchnorm_buffers(model) -> list[torch.Tensor]:
    return [
        b.clone()
        for m in model.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        for b in (m.running_mean, m.running_var, m.num_batches_tracked)
    ]


def test_pgd_at_crafts_the_adversary_in_train_mode_by_default(tmp_path, digits):
    train, val = digits
    assert PGDATParams().attack_mode == "train"  # Madry's and Rice's reference code
    x, y = train.x[:64], train.y[:64]
    for mode in ("train", "eval"):
        model = fresh_model(train).train()
        recipe = PGDATLoop(params_of(PGDATParams, attack_mode=mode, **ATTACK), context(tmp_path))
        modes = record_inputs(model)
        before = batchnorm_buffers(model)
        recipe.adversarial(model, x, y, torch.Generator().manual_seed(0))
        after = batchnorm_buffers(model)
        assert model.training, "the model's mode is restored for the update"
        assert [training for training, _ in modes] == [mode == "train"] * ATTACK["attack_steps"]
        if mode == "train":  # batch statistics; every attack step updates the running ones
            steps = [a - b for a, b in zip(after[2::3], before[2::3], strict=True)]
            assert all(int(s) == ATTACK["attack_steps"] for s in steps)
            assert not torch.equal(after[0], before[0])
        else:
            assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))

    # the robust validation of early stopping attacks and scores in eval mode regardless
    model = fresh_model(train).train()
    recipe = PGDATLoop(params_of(PGDATParams, attack_mode="train", **ATTACK), context(tmp_path))
    modes = record_inputs(model)
    before = batchnorm_buffers(model)
    recipe.robust_accuracy(model, val.subset(40, seed=0))
    assert model.training and modes and not any(training for training, _ in modes)
    assert all(torch.equal(a, b) for a, b in zip(batchnorm_buffers(model), before, strict=True))


# ----- trades --------------------------------------------------------------------------------


def test_trades_crafts_the_adversary_in_eval_mode_as_its_reference(digits):
    train, _ = digits
    model = fresh_model(train).train()
    modes = record_inputs(model)
    before = batchnorm_buffers(model)
    params = params_of(TradesParams, **ATTACK)
    trades_adversarial(model, train.x[:64], params, torch.Generator().manual_seed(0))
    assert model.training and not any(training for training, _ in modes)
    assert all(torch.equal(a, b) for a, b in zip(batchnorm_buffers(model), before, strict=True))


def test_trades_kl_term_is_positive_and_maximized(tmp_path, small_digits):
    train, val = small_digits
    params = params_of(TradesParams, **ATTACK)
    kls: list[float] = []

    class Spy(TradesLoop):
        def batch_loss(self, model, x, y, state):
            loss, logits = super().batch_loss(model, x, y, state)
            kls.append(state.logs["kl"])
            expected = state.logs["natural_loss"] + params.beta * state.logs["kl"]
            assert loss.item() == pytest.approx(expected, rel=1e-5)
            return loss, logits

    model = fresh_model(train)
    history = Spy(params, context(tmp_path)).run(model, train, val)["history"]
    assert len(kls) == math.ceil(len(train) / 128) and min(kls) > 0
    assert history[-1]["kl"] > 0

    x = val.x[:64]
    x_adv = trades_adversarial(model, x, params, torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    model.eval()
    with torch.no_grad():
        clean = model(x)
        start = (
            x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        ).clamp(0, 1)
        assert trades_kl(model(x_adv), clean) > 10 * trades_kl(model(start), clean)


# ----- AR-AdaLS / AdaLS ----------------------------------------------------------------------


def ar_params(**extra) -> ArAdaLSParams:
    return ArAdaLSParams.model_validate({**FAST, "strata": 4, **extra})


def test_ar_adals_update_follows_validation_overconfidence():
    recipe = AdaptiveLabelSmoothingLoop(ar_params(alpha=0.5), context_stub(), 4)
    recipe.num_classes = 10
    conf = torch.tensor([0.9, 0.5, 0.99, 0.6], dtype=torch.float64)
    acc = torch.tensor([0.5, 0.9, 0.0, 0.6], dtype=torch.float64)
    recipe.update(conf, acc)  # from p = 1
    assert recipe.p.tolist() == pytest.approx([0.8, 1.0, 0.505, 1.0])
    for _ in range(5):
        recipe.update(conf, acc)
    p = recipe.p
    assert p[0] < 0.8 and p[1] == 1.0 and p[3] == 1.0
    assert 0.1 < p[2] < 0.1 + 1e-5, "over-confidence is clipped just above 1/Z"
    recipe.update(-conf, acc)  # under-confident now: labels sharpen again
    assert torch.all(recipe.p >= p) and recipe.p[0] > p[0]


def context_stub() -> TrainContext:
    from pathlib import Path

    return TrainContext(CPU, 0, Path("/nonexistent/state.pt"), progress=False)


def test_ar_adals_soft_labels_track_each_stratum(tmp_path, digits):
    train, val = digits
    rng = np.random.default_rng(0)
    scores = (rng.random(len(train)), rng.random(len(val)))
    alpha = 0.3
    used: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    class Spy(AdaptiveLabelSmoothingLoop):
        def targets(self, y, indices):
            t = super().targets(y, indices)
            used.append((t, self.p.clone(), self.train_strata[indices]))
            return t

    params = ar_params(alpha=alpha, epochs=3)
    recipe = Spy(params, context(tmp_path), params.strata, scores)
    history = recipe.run(fresh_model(train), train, val)["history"]
    np.testing.assert_array_equal(recipe.train_strata.numpy(), robustness_bins(scores[0], 4))
    assert np.bincount(recipe.val_strata.numpy()).tolist() == [45] * 4
    p = np.ones(4)
    for record in history:
        gap = np.array(record["val_conf_r"]) - np.array(record["val_acc_r"])
        new = np.array(record["soft_label_r"])
        np.testing.assert_allclose(new, np.clip(p - alpha * gap, 0.1 + 1e-6, 1.0))
        assert np.all((new > 0.1) & (new <= 1.0))
        moved = (new - p) * gap
        assert np.all(moved <= 1e-12), "p_r moves against the confidence-accuracy gap"
        p = new
    for targets, p_now, strata in used:  # the loss used the current p of each example's stratum
        assert torch.allclose(targets.sum(1), torch.ones(len(targets)))
        true_mass = targets.max(1).values.double()
        assert torch.allclose(true_mass, p_now[strata], atol=1e-6)


def test_ar_adals_ranks_on_a_cached_vanilla_model_with_cw(tmp_path, digits, monkeypatch):
    from models.training import ar_adals

    train, val = digits
    computed = []

    def spy(model, data, params, device, progress):
        scores = example_robustness(model, data, params, device, progress)
        computed.append(scores)
        return scores

    monkeypatch.setattr(ar_adals, "example_robustness", spy)
    vanilla = {**FAST, "epochs": 4, "batch_size": 64}
    cw = {"cw_steps": 10, "cw_binary_search_steps": 2, "cw_lr": 0.1, "cw_initial_const": 1.0}
    params = {**FAST, "strata": 3, "vanilla": vanilla, **cw}
    job = TrainingJob("small_cnn", {"width": 0.25}, "ar_adals", params, {"dataset": "d"}, seed=2)
    train_or_load(job, train, val, tmp_path, CPU, progress=False)
    assert [len(s) for s in computed] == [len(train), len(val)]
    for scores in computed:
        assert np.all(scores >= 0) and np.isfinite(scores).mean() > 0.75
        assert len(np.unique(scores)) > len(scores) // 2, "scores should rank the examples"
    twin = TrainingJob("small_cnn", {"width": 0.25}, "standard", vanilla, {"dataset": "d"}, 2)
    assert checkpoint_path(twin, tmp_path).is_file(), "the vanilla twin is cached"
    default = ArAdaLSParams.model_validate(FAST)
    assert loop_params(default) == StandardParams.model_validate(FAST).model_dump()


def test_ddn_option_gives_distances(digits):
    train, val = digits
    model = fresh_model(train).eval()
    scores = example_robustness(model, val, ar_params(attack="ddn", ddn_steps=10), CPU, False)
    assert scores.shape == (len(val),) and np.all(scores >= 0)


def test_adaptive_label_smoothing_user_errors(tmp_path, digits):
    train, val = digits
    with pytest.raises(BenchmarkError, match="needs the validation split"):
        train_ar_adals(fresh_model(train), train, None, ar_params(), context(tmp_path))
    with pytest.raises(BenchmarkError, match="no robustness scores"):
        train_ar_adals(fresh_model(train), train, val, ar_params(), context(tmp_path))
    path = tmp_path / "scores.npz"
    np.savez(path, train=np.zeros(len(train)), val=np.zeros(3))
    with pytest.raises(BenchmarkError, match="SHA-256 differs"):
        bad = ar_params(scores_file=str(path), scores_sha256="0" * 64)
        train_ar_adals(fresh_model(train), train, val, bad, context(tmp_path))
    with pytest.raises(BenchmarkError, match=r"'val' has shape \(3,\)"):
        wrong = ar_params(scores_file=str(path), scores_sha256=file_sha256(path))
        train_ar_adals(fresh_model(train), train, val, wrong, context(tmp_path))
    with pytest.raises(ValueError, match="scores_sha256"):
        ar_params(scores_file=str(path))


# ----- sam_swa -------------------------------------------------------------------------------


def test_swa_weights_are_the_mean_of_the_snapshots(tmp_path, digits):
    train, val = digits
    snapshots: list[dict[str, torch.Tensor]] = []

    class Spy(SamSwaLoop):
        def end_epoch(self, model, train, val, record):
            if record["epoch"] > self.params.swa_start:
                snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
            super().end_epoch(model, train, val, record)

    params = params_of(SamSwaParams, epochs=4, swa_start=1, optimizer="sgd", lr=0.05)
    model = fresh_model(train)
    Spy(params, context(tmp_path)).run(model, train, val)
    assert len(snapshots) == 3
    for name, value in model.named_parameters():
        mean = torch.stack([s[name] for s in snapshots]).mean(0)
        assert torch.allclose(value, mean, atol=1e-6), name
    # BatchNorm statistics were recomputed for the averaged weights on the training images
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    reference.train()
    with torch.no_grad():
        for start in range(0, len(train), 128):
            reference(train.x[start : start + 128])
    for a, b in zip(model.buffers(), reference.buffers(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_sam_step_uses_the_gradient_at_the_perturbed_weights(tmp_path, digits):
    train, _ = digits
    rho, lr = 0.05, 0.1
    params = params_of(SamSwaParams, rho=rho, optimizer="sgd", lr=lr, momentum=0.0, swa_start=0)
    model = fresh_model(train)
    x, y = train.x[:64], train.y[:64]
    twin = copy.deepcopy(model)
    model.train()
    twin.train()

    loss = F.cross_entropy(twin(x), y)
    grads = torch.autograd.grad(loss, list(twin.parameters()))
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    with torch.no_grad():
        for p, g in zip(twin.parameters(), grads, strict=True):
            p.add_(rho * g / norm)
    second = torch.autograd.grad(F.cross_entropy(twin(x), y), list(twin.parameters()))
    expected = [p0.detach() - lr * g2 for p0, g2 in zip(model.parameters(), second, strict=True)]

    calls = record_inputs(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    state = BatchState(0, 0, torch.arange(64), torch.Generator())
    SamSwaLoop(params, context(tmp_path)).train_step(model, optimizer, x, y, state)
    assert len(calls) == 2, "SAM takes two forward/backward passes per step"
    for p, e in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(p, e, atol=1e-6)


def test_sam_alone_keeps_the_last_weights_and_the_cosine_schedule(tmp_path, digits):
    """``swa: false`` (FMFP's SAM-only ablation): no averaging, no BatchNorm recomputation,
    the final weights are the last step's, and swa_start may lie past the end."""
    train, val = digits
    last: dict[str, torch.Tensor] = {}

    class Spy(SamSwaLoop):
        def end_epoch(self, model, train, val, record):
            last.update({n: p.detach().clone() for n, p in model.named_parameters()})
            super().end_epoch(model, train, val, record)

    params = params_of(SamSwaParams, epochs=2, swa=False, optimizer="sgd", lr=0.05)
    assert params.swa_start >= params.epochs  # refused with swa: true
    model = fresh_model(train)
    history = Spy(params, context(tmp_path)).run(model, train, val)
    for name, value in model.named_parameters():
        assert torch.equal(value, last[name]), name
    assert all(r["swa_models"] == 0 for r in history["history"])
    assert sam_swa_lr(params, 150) == pytest.approx(
        0.5 * params.lr * (1 + math.cos(math.pi * 150 / params.cosine_epochs))
    )


def test_swa_alone_takes_one_pass_per_step(tmp_path, digits):
    train, _ = digits
    params = params_of(SamSwaParams, rho=0.0, optimizer="sgd", lr=0.1, momentum=0.0, swa_start=0)
    model = fresh_model(train)
    x, y = train.x[:64], train.y[:64]
    twin = copy.deepcopy(model).train()
    grads = torch.autograd.grad(F.cross_entropy(twin(x), y), list(twin.parameters()))
    expected = [p.detach() - 0.1 * g for p, g in zip(model.parameters(), grads, strict=True)]
    calls = record_inputs(model.train())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = BatchState(0, 0, torch.arange(64), torch.Generator())
    SamSwaLoop(params, context(tmp_path)).train_step(model, optimizer, x, y, state)
    assert len(calls) == 1
    for p, e in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(p, e, atol=1e-6)


def test_sam_swa_schedule_matches_torch_cosine_then_swalr():
    from torch.optim.lr_scheduler import CosineAnnealingLR
    from torch.optim.swa_utils import SWALR

    params = SamSwaParams()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=params.lr)
    cosine = CosineAnnealingLR(optimizer, T_max=params.cosine_epochs)
    swa = SWALR(optimizer, swa_lr=params.swa_lr, anneal_epochs=params.swa_anneal_epochs)
    for epoch in range(1, params.epochs + 1):  # as in the reference main_fmfp.py
        assert sam_swa_lr(params, epoch - 1) == pytest.approx(optimizer.param_groups[0]["lr"])
        optimizer.step()
        (swa if epoch > params.swa_start else cosine).step()


# ----- every recipe resumes exactly ----------------------------------------------------------


RESUMABLE = {
    "standard": {},
    "gaussian_noise": {"sigma": 0.2},
    "label_smoothing": {"eps": 0.1},
    "adals": {"alpha": 0.5},
    "ar_adals": {"alpha": 0.5, "strata": 3},
    "pgd_at": {**ATTACK, "early_stopping": True, "val_examples": 60},
    "trades": ATTACK,
    "sam_swa": {"swa_start": 0, "optimizer": "sgd", "lr": 0.05},
}
RECIPE_STATE = {"adals": "p", "ar_adals": "scores_train", "pgd_at": "best", "sam_swa": "swa"}


def test_every_registered_recipe_has_a_resume_case():
    # the package's recipes; tests may register their own (e.g. test_executors' "counting")
    keys = RECIPES.keys()  # a Registry, not a dict: iterating it does not give keys
    ours = {key for key in keys if RECIPES.get(key).obj.__module__.startswith("models.")}
    assert ours <= set(RESUMABLE)
    assert {"standard", "pgd_at", "trades", "ar_adals"} <= ours


@pytest.mark.parametrize("recipe", sorted(RESUMABLE))
def test_interrupted_recipe_resumes_to_identical_weights(
    recipe, tmp_path, small_digits, monkeypatch
):
    train, val = small_digits
    params = {**FAST, "epochs": 2, **RESUMABLE[recipe]}
    if recipe == "ar_adals":
        path = tmp_path / "scores.npz"
        rng = np.random.default_rng(0)
        np.savez(path, train=rng.random(len(train)), val=rng.random(len(val)))
        params.update(scores_file=str(path), scores_sha256=file_sha256(path))
    job = TrainingJob("small_cnn", {"width": 0.25}, recipe, params, {"dataset": "d"}, seed=4)
    reference, _ = train_or_load(job, train, val, tmp_path / "a", CPU, progress=False)
    interrupt_in_second_epoch(
        monkeypatch, lambda: train_or_load(job, train, val, tmp_path / "b", CPU, progress=False)
    )
    state = torch.load(next((tmp_path / "b").glob("*.state.pt")), weights_only=True)
    assert state["epoch"] == 1
    if recipe in RECIPE_STATE:
        assert RECIPE_STATE[recipe] in state["recipe"]
    resumed, _ = train_or_load(job, train, val, tmp_path / "b", CPU, progress=False)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
