"""Hostile inputs: each gives one clear error line and exit status 2, and never costs a result
already in the cache. Plus a property-based test of the suite loader on random documents."""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.suite import Suite, SuiteError, load_suite
from tests.conftest import tiny_suite, write_cifar_batches

PLUGIN = """
import torch
from torch import nn

from benchmark.datasets import register_dataset
from benchmark.datasets.base import ArrayDataset, DataInfo
from models import register_model


class Features(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :5]  # 5 outputs for 10 classes: not logits


@register_model("wrong_shape", "returns 5 features instead of 10 logits")
def wrong_shape(num_classes: int, in_channels: int) -> nn.Module:
    return Features()


@register_dataset("nan_digits", "8x8 images, one of them NaN")
def nan_digits(options, split):
    x = torch.rand(20, 1, 8, 8)
    x[3, 0, 2, 2] = float("nan")
    info = DataInfo(num_classes=10, in_channels=1, image_size=(8, 8), mean=(0.5,), std=(0.5,))
    return ArrayDataset("nan_digits", split, x, torch.arange(20) % 10, info, torch.arange(20))
"""


class Evil:
    """Unpickling this runs a shell command: a weights file must never do that."""

    def __reduce__(self):
        return (print, ("pwned",))


def first_run(tmp_path: Path, write_suite) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A completed run whose cached results must survive every hostile follow-up."""
    suite = tiny_suite(tmp_path)
    suite["evaluations"] = [{"type": "clean", "params": {"bootstrap": 0}}]
    assert main(["run", str(write_suite(suite, "good.yaml")), "--quiet"]) == 0
    return suite, snapshot(tmp_path / "run" / "cache" / "results")


def snapshot(results: Path) -> dict[str, bytes]:
    return {str(p.relative_to(results)): p.read_bytes() for p in results.rglob("*") if p.is_file()}


def hostile_cases(tmp_path: Path, suite: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """name -> (suite dict or raw YAML text, expected fragment of the one error line)."""
    ckpt_dir = tmp_path / "weights"
    ckpt_dir.mkdir(exist_ok=True)
    torch.save({"w": torch.zeros(3)}, ckpt_dir / "truncated.pt")
    (ckpt_dir / "truncated.pt").write_bytes((ckpt_dir / "truncated.pt").read_bytes()[:50])
    (ckpt_dir / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    cifar = tmp_path / "cifar"
    write_cifar_batches(cifar / "cifar-10-batches-py", per_batch=4)
    (cifar / "cifar-10-batches-py" / "data_batch_3").unlink()

    def with_model(**model: Any) -> dict[str, Any]:
        return {**suite, "models": [{"name": "m", "model": "small_cnn", **model}]}

    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    return {
        "malformed_yaml": ("name: [unclosed\n", "invalid YAML"),
        "deeply_nested_yaml": ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        "alias_bomb": (laughs, "YAML nodes (aliases)"),
        "huge_file": ("# " + "x" * (1 << 20) + "\n", "larger than"),
        "wrong_type": ({**suite, "seed": "zero"}, "seed: Input should be a valid integer"),
        "unknown_key": ({**suite, "executors": {}}, "executors: unknown field"),
        "nan_param": (
            {**suite, "evaluations": [{"type": "fgsm", "params": {"eps": math.nan}}]},
            "evaluations[0].params.eps: non-finite number nan",
        ),
        "inf_lr": (
            with_model(training={"recipe": "standard", "params": {"lr": math.inf}}),
            "models[0].training.params.lr: non-finite number inf",
        ),
        "truncated_checkpoint": (
            with_model(checkpoint=str(ckpt_dir / "truncated.pt")),
            "cannot read checkpoint",
        ),
        "code_executing_checkpoint": (
            with_model(checkpoint=str(ckpt_dir / "evil.pt")),
            "refused to load: not a weights-only checkpoint",
        ),
        "wrong_output_shape": (
            {
                **suite,
                "plugins": ["hostile_plugin"],
                "models": [{"model": "wrong_shape", "random_init": True}],
            },
            "model 'wrong_shape': output shape (2, 5) for 2 input(s), expected (2, 10)",
        ),
        "nan_in_data": (
            {**suite, "plugins": ["hostile_plugin"], "dataset": {"name": "nan_digits"}},
            "dataset 'nan_digits' split 'test': 1 image(s) contain NaN or inf values",
        ),
        "dataset_missing_files": (
            {**suite, "dataset": {"name": "cifar10", "root": str(cifar)}},
            "data_batch_3",
        ),
    }


def test_hostile_inputs_fail_in_one_line_and_keep_the_cache(
    tmp_path, write_suite, capsys, monkeypatch
):
    (tmp_path / "hostile_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite, before = first_run(tmp_path, write_suite)
    capsys.readouterr()
    for name, (content, expected) in hostile_cases(tmp_path, suite).items():
        path = write_suite(content, f"{name}.yaml")
        assert main(["run", str(path), "--quiet"]) == 2, name
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, lines)
        assert expected in lines[0], (name, lines[0])
        assert "pwned" not in captured.out
    assert snapshot(tmp_path / "run" / "cache" / "results") == before


def test_tampered_training_checkpoint_is_reported_retrained_and_keeps_results(
    tmp_path, write_suite, capsys, caplog
):
    """A cached checkpoint that fails its recorded SHA-256 is never served: one line says so
    and the model is retrained -- to the same bytes, training being deterministic."""
    suite = tiny_suite(tmp_path)
    training = {
        "recipe": "standard",
        "params": {"epochs": 1, "batch_size": 256, "optimizer": "adam", "augment": "none"},
    }
    suite["models"] = [{"name": "cnn", "model": "small_cnn", "training": training}]
    suite["evaluations"] = [{"type": "clean", "params": {"bootstrap": 0}}]
    path = write_suite(suite)
    assert main(["run", str(path), "--quiet"]) == 0
    before = snapshot(tmp_path / "run" / "cache" / "results")
    (checkpoint,) = (tmp_path / "run" / "cache" / "checkpoints").glob("*.pt")
    original = checkpoint.read_bytes()
    checkpoint.write_bytes(original[:-7])  # truncated
    suite["evaluations"].append({"type": "fgsm", "params": {"eps": 0.1}})  # needs the model
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="models.training.engine"):
        assert main(["run", str(write_suite(suite, "more.yaml")), "--quiet"]) == 0
    warnings = [r.getMessage() for r in caplog.records]  # on stderr outside pytest
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert "checkpoint hash mismatch" in warnings[0] and "retraining" in warnings[0]
    assert "Traceback" not in capsys.readouterr().err
    assert checkpoint.read_bytes() == original
    after = snapshot(tmp_path / "run" / "cache" / "results")
    assert {k: v for k, v in after.items() if k in before} == before


# --- property-based: random YAML documents never crash the loader -------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["digits", "clean", "fgsm", "small_cnn", "cpu", "8/255", "Linf"]),
)
keys = st.one_of(
    st.sampled_from(
        [
            "name",
            "seed",
            "device",
            "batch_size",
            "dataset",
            "models",
            "evaluations",
            "model",
            "params",
            "type",
            "random_init",
            "executor",
            "kind",
            "workers",
            "shard_size",
            "split",
            "n_examples",
            "eps",
            "training",
            "checkpoint",
        ]
    ),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=30,
)


def near_valid() -> st.SearchStrategy[dict[str, Any]]:
    """Mutations of a valid suite: each field kept, dropped or replaced by random data."""
    base = tiny_suite(Path("/tmp/unused"))
    base["models"] = base["models"][:1]
    return st.fixed_dictionaries(
        {},
        optional={key: st.one_of(st.just(value), documents) for key, value in base.items()},
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=st.one_of(documents, near_valid()))
def test_random_documents_give_a_suite_or_a_clean_error(tmp_path, doc):
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        suite = load_suite(path)
    except SuiteError as exc:
        assert exc.lines and all(line.startswith(str(path)) for line in exc.lines)
        assert all("\n" not in line and "Traceback" not in line for line in exc.lines)
    else:
        assert isinstance(suite, Suite)
        Suite.model_validate(suite.model_dump())  # a returned suite is fully valid


def test_hostile_bytes_are_clean_errors(tmp_path):
    for i, raw in enumerate([b"\xff\xfe\x00bad", b"!!python/object:os.system {}", b"- 1\n- 2"]):
        path = tmp_path / f"raw{i}.yaml"
        path.write_bytes(raw)
        with pytest.raises(BenchmarkError):
            load_suite(path)
