"""Mixed precision: the suite's ``autocast`` (bf16/fp16 prediction passes of prediction-only
evaluations) and a model's ``training.autocast`` (its training loop). Attacks always craft and
score in float32, whatever the setting; keys without the setting stay as they were."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, get_args

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.datasets import load_dataset
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.evaluations.capabilities import PredictionOnly, is_adversarial
from benchmark.evaluations.clean import CleanEvaluation
from benchmark.inference import AUTOCAST_DTYPES, predict_probs
from benchmark.runner import expand_jobs, run_suite
from benchmark.runner.jobs import (
    data_identity,
    evaluation_identity,
    job_versions,
    model_identity,
    model_versions,
    split_fingerprint,
    training_job,
)
from benchmark.suite import SuiteError, load_suite
from benchmark.suite.schema import Autocast
from benchmark.utils import stable_hash
from models.training import TrainContext, TrainingJob, TrainingLoop, train_or_load
from models.training.sam_swa import SamSwaLoop, SamSwaParams
from models.training.standard import StandardParams
from tests.conftest import interrupt_in_second_epoch, tiny_suite

CPU = torch.device("cpu")
PGD = {"type": "pgd", "params": {"eps": 0.1, "steps": 3}}


def quiet(_message: str) -> None:
    pass


@contextmanager
def layer_dtypes() -> Iterator[list[torch.dtype]]:
    """The output dtype of every Conv2d/Linear forward in the block (any model, any code)."""
    seen: list[torch.dtype] = []

    def hook(module: nn.Module, _args: Any, output: Any) -> None:
        if isinstance(module, nn.Conv2d | nn.Linear) and isinstance(output, torch.Tensor):
            seen.append(output.dtype)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def test_the_schema_values_are_the_dtypes_inference_knows():
    assert set(get_args(Autocast)) == set(AUTOCAST_DTYPES)


def test_prediction_only_evaluations_are_never_adversarial():
    classes = {key: EVALUATIONS.get(key).obj for key in sorted(EVALUATIONS.keys())}
    prediction_only = {key for key, cls in classes.items() if issubclass(cls, PredictionOnly)}
    assert {"clean", "corruptions", "ood_detection", "consistency", "ensemble_size"} <= (
        prediction_only
    )
    gradient_users = {"sanity", "robustness_ranking", "pgd", "fgsm", "attacks", "eps_sweep"}
    assert not prediction_only & gradient_users
    assert not any(is_adversarial(classes[key]) for key in prediction_only)


def test_clean_evaluation_predicts_in_bf16_close_to_fp32(trained):
    model, test = trained
    model.eval()
    results, dtypes = {}, {}
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        ctx = EvalContext(CPU, 128, 0, progress=False, autocast=dtype)
        with layer_dtypes() as seen:
            results[label] = CleanEvaluation(CleanEvaluation.Params()).run(model, test, ctx)
        dtypes[label] = set(seen)
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    fp32, bf16 = (results[k].metrics for k in ("fp32", "bf16"))
    assert all(np.isfinite(v) for v in bf16.values())
    assert fp32["acc_pct"] > 80  # a trained model, so the comparison means something
    assert abs(bf16["acc_pct"] - fp32["acc_pct"]) <= 3.0
    assert bf16["nll"] == pytest.approx(fp32["nll"], rel=0.1)
    probs = [results[k].records.filter(like="prob_").to_numpy() for k in ("fp32", "bf16")]
    assert np.abs(probs[0] - probs[1]).max() < 0.1
    assert probs[1].dtype == np.float64  # cast up before the softmax


def test_predict_probs_without_autocast_ignores_a_callers_autocast(trained):
    model, test = trained
    x = test.x[:64]
    reference = predict_probs(model.eval(), x, batch_size=32, device=CPU)
    with torch.autocast("cpu", dtype=torch.bfloat16), layer_dtypes() as seen:
        ambient = predict_probs(model, x, batch_size=32, device=CPU)
    assert set(seen) == {torch.float32}
    np.testing.assert_array_equal(ambient, reference)


def test_attacks_craft_and_score_in_fp32_whatever_the_suite_autocast(
    tmp_path, write_suite, monkeypatch
):
    """The issue's test: under autocast bf16, PGD's robust accuracy equals the fp32 run's
    exactly and every activation during the attack, its scoring and the automatic sanity
    checks is float32 -- even with a caller's bf16 autocast around the whole run. Each run
    has its own run folder, so every number is computed, none comes from a cache."""
    # the model's output probe is not an evaluation (and would see the caller's autocast)
    monkeypatch.setattr("benchmark.runner.worker.check_model_output", lambda *a: None)
    boards, dtypes = {}, {}
    for label in ("fp32", "bf16", "bf16 in a caller's autocast"):
        overrides: dict[str, Any] = {"evaluations": [PGD], "output_dir": str(tmp_path / label)}
        if label != "fp32":
            overrides["autocast"] = "bf16"
        suite = load_suite(write_suite(tiny_suite(tmp_path, **overrides), f"{label}.yaml"))
        assert [j.evaluation.type for j in expand_jobs(suite, "cpu")].count("sanity") == 2
        ambient = torch.autocast("cpu", torch.bfloat16, enabled=label.endswith("autocast"))
        with layer_dtypes() as seen, ambient:
            boards[label] = run_suite(suite, progress=False, log=quiet).leaderboard
        dtypes[label] = set(seen)
    assert all(found == {torch.float32} for found in dtypes.values()), dtypes
    assert [c for c in boards["fp32"].columns if c.endswith("robust_acc_pct")]
    numeric = boards["fp32"].select_dtypes("number").columns
    for label in boards:  # bit-identical numbers (and the same keys: results are shared)
        assert boards[label][numeric].equals(boards["fp32"][numeric]), label


def test_the_runner_hands_prediction_only_evaluations_the_autocast(tmp_path, write_suite):
    suite = load_suite(write_suite(tiny_suite(tmp_path, autocast="bf16")))
    plain = load_suite(write_suite(tiny_suite(tmp_path, output_dir=str(tmp_path / "p")), "p.yaml"))
    with layer_dtypes() as seen:
        board = run_suite(suite, progress=False, log=quiet).leaderboard
    # the model's output check runs in float32; every evaluation pass in bfloat16
    assert torch.bfloat16 in seen and seen.count(torch.bfloat16) > seen.count(torch.float32)
    reference = run_suite(plain, progress=False, log=quiet).leaderboard
    for column in ("clean_acc_pct", "clean10_acc_pct"):
        assert np.isfinite(board[column]).all()
        np.testing.assert_allclose(board[column], reference[column], atol=5.0)


def keys_before_autocast_existed(suite) -> list[str]:
    """The job keys as :func:`expand_jobs` computed them before the ``autocast`` field."""
    data, evaluated = data_identity(suite), split_fingerprint(suite, suite.dataset.split)
    keys = []
    for model in suite.models:
        for evaluation in suite.evaluations:
            identity = {
                "model": model_identity(model, suite),
                "evaluation": evaluation_identity(evaluation),
                "data": data,
                "seed": suite.seed,
                "device": "cpu",
            }
            versions = job_versions(model_versions(model, suite), evaluated, evaluation, None)
            keys.append(stable_hash({**identity, "versions": versions}))
    return keys


def test_autocast_enters_keys_only_when_set_and_only_where_it_applies(tmp_path, write_suite):
    evaluations = [{"type": "clean"}, PGD]
    suites = {
        name: load_suite(
            write_suite(tiny_suite(tmp_path, evaluations=evaluations, **extra), f"{name}.yaml")
        )
        for name, extra in {
            "omitted": {"sanity": False},
            "null": {"sanity": False, "autocast": None},
            "bf16": {"sanity": False, "autocast": "bf16"},
            "fp16": {"sanity": False, "autocast": "fp16"},
        }.items()
    }
    jobs = {name: expand_jobs(suite, "cpu") for name, suite in suites.items()}
    keys = {name: [j.key for j in js] for name, js in jobs.items()}
    assert keys["omitted"] == keys["null"] == keys_before_autocast_existed(suites["omitted"])
    clean = [i for i, j in enumerate(jobs["omitted"]) if j.evaluation.type == "clean"]
    pgd = [i for i, j in enumerate(jobs["omitted"]) if j.evaluation.type == "pgd"]
    for name in ("bf16", "fp16"):
        assert all(keys[name][i] != keys["omitted"][i] for i in clean)
        assert all(keys[name][i] == keys["omitted"][i] for i in pgd)  # fp32 regardless
        assert [j.seed_key for j in jobs[name]] == [j.seed_key for j in jobs["omitted"]]
    assert all(keys["bf16"][i] != keys["fp16"][i] for i in clean)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"autocast": "fp32"}, "autocast"),
        ({"autocast": True}, "autocast"),
        (
            {
                "models": [
                    {
                        "model": "small_cnn",
                        "training": {"recipe": "standard", "autocast": "half"},
                    }
                ]
            },
            "models[0].training.autocast",
        ),
    ],
)
def test_an_invalid_autocast_is_a_one_line_error_naming_the_field(
    tmp_path, write_suite, raw, field
):
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tiny_suite(tmp_path, **raw)))
    message = str(info.value)
    assert "\n" not in message and f"{field}: " in message and "'bf16' or 'fp16'" in message


def tiny_training_job(autocast: str | None, epochs: int = 1) -> TrainingJob:
    params = {"epochs": epochs, "batch_size": 64, "optimizer": "adam", "lr": 0.01}
    params["augment"] = "none"
    return TrainingJob(
        "small_cnn", {"width": 0.25}, "standard", params, {"dataset": "digits"}, 0, None, autocast
    )


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_training_under_autocast_gives_finite_weights_and_its_own_checkpoint(tmp_path, autocast):
    train = load_dataset("digits", "train")
    fp32, mixed = tiny_training_job(None), tiny_training_job(autocast)
    assert mixed.key() != fp32.key() and mixed.seed_key() == fp32.seed_key()
    # the float32 key is computed as before the field existed
    assert fp32.key() == stable_hash({**fp32._identity(), "versions": _versions(fp32)})
    with layer_dtypes() as seen:
        model, path = train_or_load(mixed, train, None, tmp_path, CPU, progress=False)
    assert AUTOCAST_DTYPES[autocast] in seen  # the forward passes ran in reduced precision
    assert path.name.endswith(f"{mixed.key()}.pt")
    weights = list(model.state_dict().values())
    assert all(w.dtype != torch.bfloat16 and w.dtype != torch.float16 for w in weights)
    assert all(torch.isfinite(w).all() for w in weights if w.is_floating_point())


def _versions(job: TrainingJob) -> dict[str, Any]:
    from models.registry import model_code_version
    from models.training.recipes import recipe_code_version

    return {
        "model_code": model_code_version(job.model_key),
        "recipe_code": recipe_code_version(job.recipe),
        "data_content": job.data.get("content"),
    }


def test_a_suite_trained_in_bf16_gets_its_own_checkpoint_and_job_keys(tmp_path, write_suite):
    def trained_model(**training: Any) -> dict[str, Any]:
        return {"model": "small_cnn", "training": {"recipe": "standard", **training}}

    raw = tiny_suite(tmp_path, models=[trained_model(), trained_model(autocast="bf16")])
    raw["models"][1]["name"] = "cnn_bf16"
    suite = load_suite(write_suite(raw))
    plain, mixed = (training_job(m, suite) for m in suite.models)
    assert mixed.autocast == "bf16" and plain.autocast is None
    assert mixed.key() != plain.key() and mixed.seed_key() == plain.seed_key()
    keys = [j.key for j in expand_jobs(suite, "cpu")]
    assert len(set(keys)) == len(keys)


def test_a_recipe_with_its_own_train_step_refuses_autocast(tmp_path):
    """A train_step that does not say it autocasts itself is refused, not run in float32."""

    class OwnStep(TrainingLoop):
        def train_step(self, model, optimizer, x, y, state):
            return super().train_step(model, optimizer, x, y, state)

    train = load_dataset("digits", "train").subset(64, 0)
    ctx = TrainContext(CPU, 0, tmp_path / "state.pt", progress=False, autocast=torch.bfloat16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(BenchmarkError, match=r"^training.autocast: OwnStep has its own"):
        OwnStep(StandardParams(epochs=1, batch_size=32), ctx).run(model, train, None)


def test_sam_runs_both_passes_under_bf16_and_refuses_fp16(tmp_path):
    train = load_dataset("digits", "train").subset(64, 0)
    params = SamSwaParams(epochs=1, swa_start=0, batch_size=32)
    dtypes = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    ctx = TrainContext(CPU, 0, tmp_path / "a.pt", progress=False, autocast=torch.bfloat16)
    SamSwaLoop(params, ctx).run(model, train, None)
    assert dtypes[:4] == [torch.bfloat16] * 4  # two steps, two passes each
    ctx = TrainContext(CPU, 0, tmp_path / "b.pt", progress=False, autocast=torch.float16)
    with pytest.raises(BenchmarkError, match="sam_swa supports bf16"):
        SamSwaLoop(params, ctx).run(model, train, None)


def test_interrupted_fp16_training_resumes_to_identical_weights(tmp_path, monkeypatch):
    """The gradient scaler's state (its scale, skipped steps) is part of the resume state."""

    train, val = load_dataset("digits", "train").subset(256, 0), load_dataset("digits", "val")
    job = tiny_training_job("fp16", epochs=2)
    reference, _ = train_or_load(job, train, val, tmp_path / "a", CPU, progress=False)
    interrupt_in_second_epoch(
        monkeypatch, lambda: train_or_load(job, train, val, tmp_path / "b", CPU, progress=False)
    )
    state = torch.load(next((tmp_path / "b").glob("*.state.pt")), weights_only=True)
    assert state["epoch"] == 1 and state["scaler"]["scale"] > 0
    resumed, _ = train_or_load(job, train, val, tmp_path / "b", CPU, progress=False)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kind", "params"), [("consistency", {"frames": 4}), ("ensemble_size", {})]
)
def test_other_prediction_only_evaluations_predict_in_the_context_autocast(trained, kind, params):
    model, test = trained
    entry = EVALUATIONS.get(kind)
    evaluation = entry.obj(entry.params_model.model_validate(params))
    ctx = EvalContext(CPU, 128, 0, progress=False, autocast=torch.bfloat16)
    with layer_dtypes() as seen:
        result = evaluation.run(model.eval(), test.subset(40, 0), ctx)
    assert set(seen) == {torch.bfloat16}
    assert all(np.isfinite(v) for v in result.metrics.values())
