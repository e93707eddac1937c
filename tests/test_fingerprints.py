"""Cache keys follow the data and the code behind a result (issue 19, item 1).

Job and checkpoint keys used to name the dataset (not its files) and the model (not its
code): two suites differing only in ``dataset.root`` shared one cache, and a plugin whose
``forward`` was edited kept serving old numbers. Keys now hold each data file's name, size and
SHA-256 (memoised by stat, so big files are hashed once) and the SHA-256 of the file defining
each builder and recipe.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from benchmark import fingerprints
from benchmark.datasets import DATASETS
from benchmark.datasets.base import dataset_fingerprint
from benchmark.errors import BenchmarkError
from benchmark.runner import expand_jobs
from benchmark.runner.jobs import training_job
from benchmark.suite import load_suite
from models import MODELS
from models.training import RECIPES, checkpoint_path
from tests.conftest import tiny_suite, write_cifar_batches
from tests.test_corruption_evaluation import write_cifar10c
from tests.test_mnist import make_mnist

HOUR_AGO = time.time() - 3600
TRAINING = {"recipe": "standard", "params": {"epochs": 1}, "validation": True}


def age(folder: Path, when: float = HOUR_AGO) -> Path:
    """Date every file under ``folder`` ``when``: files just written are not memoised (a
    same-size rewrite within the file system's time-stamp tick would keep their stat)."""
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))
    return folder


def cifar_root(base: Path, seed: int = 0) -> Path:
    write_cifar_batches(base / "cifar-10-batches-py", per_batch=10, seed=seed)
    return age(base)


def cifar_suite(tmp_path: Path, root: Path) -> dict:
    models = [
        {"name": "net", "model": "small_cnn", "params": {"width": 0.25}, "random_init": True},
        {"name": "trained", "model": "small_cnn", "params": {"width": 0.25}, "training": TRAINING},
    ]
    return tiny_suite(
        tmp_path,
        dataset={"name": "cifar10", "root": str(root), "split": "test"},
        models=models,
        evaluations=[{"type": "clean"}],
        sanity=False,
    )


def keys(suite_path: Path) -> tuple[dict[str, str], str]:
    """Job keys per row and the trained row's checkpoint key."""
    suite = load_suite(suite_path)
    jobs = {job.row_name: job.key for job in expand_jobs(suite, "cpu")}
    spec = next(m for m in suite.models if m.training is not None)
    return jobs, training_job(spec, suite).key()


def test_dataset_root_enters_keys_by_content_not_by_path(tmp_path, write_suite):
    original = cifar_root(tmp_path / "a")
    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(original, copy)  # identical bytes at another path
    other = cifar_root(tmp_path / "c", seed=1)  # same layout and sizes, other pixels
    retest = tmp_path / "d"  # the training batches of `original`, another test batch
    shutil.copytree(original, retest)
    shutil.copy2(other / "cifar-10-batches-py/test_batch", retest / "cifar-10-batches-py")

    found = {
        name: keys(write_suite(cifar_suite(tmp_path, root), f"{name}.yaml"))
        for name, root in [("a", original), ("b", copy), ("c", other), ("d", retest)]
    }
    assert found["a"] == found["b"]  # same contents: same results, same checkpoint
    (jobs_a, ckpt_a), (jobs_c, ckpt_c), (jobs_d, ckpt_d) = found["a"], found["c"], found["d"]
    assert not set(jobs_a.values()) & set(jobs_c.values()) and ckpt_a != ckpt_c
    # only the test batch differs: every evaluation reruns, the checkpoint is reused
    assert not set(jobs_a.values()) & set(jobs_d.values()) and ckpt_d == ckpt_a


def test_a_missing_dataset_is_an_error_when_keying(tmp_path, write_suite):
    suite = load_suite(write_suite(cifar_suite(tmp_path, tmp_path / "nowhere")))
    with pytest.raises(BenchmarkError, match="CIFAR-10 not found"):
        expand_jobs(suite, "cpu")


def test_mnist_files_are_fingerprinted_per_split(tmp_path):
    make_mnist(tmp_path / "a")
    shutil.copytree(age(tmp_path / "a"), tmp_path / "b")
    make_mnist(age(tmp_path / "c"), seed=1)

    def fingerprint(root: str, split: str):
        return dataset_fingerprint("mnist", split, root=str(tmp_path / root))

    assert fingerprint("a", "test") == fingerprint("b", "test") != fingerprint("c", "test")
    assert fingerprint("a", "train") != fingerprint("a", "test")
    assert set(fingerprint("a", "test")["content"]["files"]) == {
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }


def test_digits_are_fingerprinted_by_their_embedded_file():
    fingerprint = dataset_fingerprint("digits", "test")
    assert fingerprint == dataset_fingerprint("digits", "test", root="/elsewhere")
    assert "digits.csv.gz" in fingerprint["content"]["files"]


def test_cifar10c_and_ood_files_enter_the_job_keys(tmp_path, write_suite):
    names = ["fog", "contrast"]
    write_cifar10c(tmp_path / "a", names)
    shutil.copytree(age(tmp_path / "a"), tmp_path / "b")
    write_cifar10c(tmp_path / "c", names)
    fog = tmp_path / "c" / "CIFAR-10-C" / "fog.npy"
    fog.write_bytes(fog.read_bytes()[:-1] + b"\x07")  # one byte differs
    age(tmp_path / "c")
    for name in "ac":
        cifar_root(tmp_path / f"ood_{name}", seed=ord(name))
    shutil.copytree(tmp_path / "ood_a", tmp_path / "ood_b")

    def job_keys(name: str, evaluation: dict) -> tuple[str, str]:
        suite = tiny_suite(tmp_path, evaluations=[evaluation], sanity=False)
        (job, _) = expand_jobs(load_suite(write_suite(suite, f"{name}.yaml")), "cpu")
        return job.key, job.seed_key

    def corruptions(root: str, source: str = "cifar10c") -> tuple[str, str]:
        params = {"corruptions": names, "source": source, "root": str(tmp_path / root)}
        return job_keys(f"c{root}{source}", {"type": "corruptions", "params": params})

    def ood(root: str) -> tuple[str, str]:
        params = {"dataset": "cifar10", "root": str(tmp_path / root)}
        return job_keys(f"o{root}", {"type": "ood_detection", "params": params})

    for keyed, roots in [(corruptions, "abc"), (ood, ["ood_a", "ood_b", "ood_c"])]:
        (key_a, seed_a), (key_b, _), (key_c, seed_c) = (keyed(root) for root in roots)
        assert key_a == key_b != key_c and seed_a == seed_c
    assert corruptions("a", "generate") == corruptions("c", "generate")


def test_fingerprinting_reads_each_file_once_then_only_what_changed(tmp_path, monkeypatch):
    root = cifar_root(tmp_path / "cifar")
    reads: list[str] = []
    real = fingerprints.file_sha256

    def counting(path, *args, **kwargs):
        reads.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fingerprints, "file_sha256", counting)
    monkeypatch.setattr(fingerprints, "_MEMO", {})
    monkeypatch.setenv(fingerprints.FINGERPRINT_CACHE_ENV, str(tmp_path / "sidecars"))
    first = dataset_fingerprint("cifar10", "train", root=str(root))
    assert dataset_fingerprint("cifar10", "train", root=str(root)) == first
    assert (
        dataset_fingerprint("cifar10", "val", root=str(root))["content"]["files"]
        == (first["content"]["files"])
    )  # val reads the same five batches
    assert sorted(reads) == [f"data_batch_{i}" for i in range(1, 6)]

    monkeypatch.setattr(fingerprints, "_MEMO", {})  # another process: the sidecars answer
    assert dataset_fingerprint("cifar10", "train", root=str(root)) == first
    assert len(reads) == 5

    batch = root / "cifar-10-batches-py" / "data_batch_3"
    changed = bytearray(batch.read_bytes())
    changed[-100] ^= 0xFF  # same size, one pixel differs
    batch.write_bytes(bytes(changed))
    os.utime(batch, (HOUR_AGO + 1, HOUR_AGO + 1))
    assert dataset_fingerprint("cifar10", "train", root=str(root)) != first
    assert reads[5:] == ["data_batch_3"]

    fresh = tmp_path / "fresh.bin"  # modified just now: hashed again until it is older
    fresh.write_bytes(b"x" * 100)
    fingerprints.content_sha256(fresh)
    fingerprints.content_sha256(fresh)
    assert reads[6:] == ["fresh.bin", "fresh.bin"]


PLUGIN = """
import torch
from torch import nn

from models import register_model


class FingerprintNet(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.linear = nn.Linear(in_channels * 64, num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1)) * SCALE


@register_model("fingerprint_test_net", "a plugin whose forward the test edits")
def fingerprint_test_net(num_classes, in_channels):
    return FingerprintNet(num_classes, in_channels)
"""

RECIPE_PLUGIN = """
from benchmark.registry import StrictParams
from models.training import register_recipe


class Params(StrictParams):
    epochs: int = 1


@register_recipe("fingerprint_test_recipe", "a plugin recipe the test edits", Params)
def fingerprint_test_recipe(model, train, val, params, ctx):
    return {"history": [STEP]}
"""


def reimport(monkeypatch, plugin: Path, registry, key: str) -> None:
    """Forget the imported plugin and its registration, as a new process would."""
    resolved = str(plugin.resolve())
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == resolved:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(registry._entries, key)


def test_editing_a_plugin_changes_its_job_and_checkpoint_keys(tmp_path, write_suite, monkeypatch):
    plugin = tmp_path / "fingerprint_plugin.py"
    models = [
        {"name": "plain", "model": "fingerprint_test_net", "random_init": True},
        {"name": "trained", "model": "fingerprint_test_net", "training": TRAINING},
        {"name": "other", "model": "small_cnn", "params": {"width": 0.25}, "random_init": True},
    ]
    suite = tiny_suite(tmp_path, plugins=[str(plugin)], models=models, sanity=False)
    path = write_suite(suite)
    found, seeds = [], []
    for scale in ["1.0", "2.0", "1.0"]:  # the forward edited, then edited back
        plugin.write_text(PLUGIN.replace("SCALE", scale))
        if found:
            reimport(monkeypatch, plugin, MODELS, "fingerprint_test_net")
        loaded = load_suite(path)
        trained = next(m for m in loaded.models if m.row_name == "trained")
        checkpoint = checkpoint_path(training_job(trained, loaded), tmp_path).name
        found.append((keys(path), checkpoint))
        seeds.append(
            (
                [job.seed_key for job in expand_jobs(loaded, "cpu")],
                training_job(trained, loaded).seed_key(),
            )
        )
    ((jobs_1, ckpt_1), file_1), ((jobs_2, ckpt_2), file_2), again = found
    assert jobs_1["plain"] != jobs_2["plain"] and jobs_1["trained"] != jobs_2["trained"]
    assert ckpt_1 != ckpt_2 and file_1 != file_2
    assert jobs_1["other"] == jobs_2["other"]  # other models keep their results
    assert again == found[0]  # keyed by content: the original code finds its results again
    # the random draws (init, training, attacks) stay: an edit shows its effect, not new noise
    assert seeds[0] == seeds[1]


def test_editing_a_plugin_recipe_changes_the_checkpoint_key(tmp_path, write_suite, monkeypatch):
    plugin = tmp_path / "fingerprint_recipe.py"
    training = {"recipe": "fingerprint_test_recipe", "validation": False}
    models = [{"name": "trained", "model": "small_cnn", "training": training}]
    path = write_suite(tiny_suite(tmp_path, plugins=[str(plugin)], models=models, sanity=False))
    found = []
    for step in ["1", "2"]:
        plugin.write_text(RECIPE_PLUGIN.replace("STEP", step))
        if found:
            reimport(monkeypatch, plugin, RECIPES, "fingerprint_test_recipe")
        found.append(keys(path))
    assert found[0][1] != found[1][1] and found[0][0] != found[1][0]


def test_builders_recipes_and_datasets_carry_their_code_version():
    import models.resnet
    import models.training.standard

    digest = fingerprints.file_sha256(models.resnet.__file__)[:16]
    assert MODELS.get("resnet20").extras["code"] == digest
    standard = fingerprints.file_sha256(models.training.standard.__file__)[:16]
    assert RECIPES.get("standard").extras["code"] == standard
    assert len(DATASETS.get("cifar10").extras["code"]) == 16


HELPER_PLUGIN = """
from torch import nn
from models import register_model
from fingerprint_helper_layers import Scaled


@register_model("fingerprint_helper_net", "a plugin whose layer lives in a helper module")
def fingerprint_helper_net(num_classes, in_channels):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes), Scaled())
"""

HELPER = """
from torch import nn


class Scaled(nn.Module):
    def forward(self, x):
        return x * SCALE
"""

EVALUATION_PLUGIN = """
from typing import ClassVar

import pandas as pd

from benchmark.evaluations import Evaluation, EvaluationResult, register_evaluation
from benchmark.metrics.specs import MetricSpec
from benchmark.registry import StrictParams


class Params(StrictParams):
    pass


@register_evaluation("fingerprint_test_eval", "a plugin evaluation the test edits")
class FingerprintEval(Evaluation):
    Params = Params
    metrics: ClassVar = (MetricSpec("value", "", "higher", "a constant"),)

    def run(self, model, data, ctx):
        return EvaluationResult({"value": VALUE}, pd.DataFrame({"index": [0]}), {})
"""


def test_editing_a_plugin_helper_module_changes_the_models_keys(tmp_path, write_suite, monkeypatch):
    """The builder's layer lives in a module beside the plugin: editing that module (not the
    plugin file) must not serve the old numbers."""
    plugin, helper = (
        tmp_path / "fingerprint_helper_plugin.py",
        tmp_path / "fingerprint_helper_layers.py",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin.write_text(HELPER_PLUGIN)
    models = [{"name": "net", "model": "fingerprint_helper_net", "random_init": True}]
    path = write_suite(tiny_suite(tmp_path, plugins=[str(plugin)], models=models, sanity=False))
    found = []
    for scale in ["1.0", "3.0"]:
        helper.write_text(HELPER.replace("SCALE", scale))
        if found:
            reimport(monkeypatch, plugin, MODELS, "fingerprint_helper_net")
            monkeypatch.delitem(sys.modules, "fingerprint_helper_layers")
        found.append({job.row_name: job.key for job in expand_jobs(load_suite(path), "cpu")})
    assert found[0]["net"] != found[1]["net"]


def test_editing_a_plugin_evaluation_changes_its_job_keys(tmp_path, write_suite, monkeypatch):
    from benchmark.evaluations import EVALUATIONS

    plugin = tmp_path / "fingerprint_eval_plugin.py"
    evaluations = [{"type": "fingerprint_test_eval"}, {"type": "clean"}]
    suite = tiny_suite(tmp_path, plugins=[str(plugin)], evaluations=evaluations, sanity=False)
    path = write_suite(suite)
    found = []
    for value in ["1.0", "2.0"]:
        plugin.write_text(EVALUATION_PLUGIN.replace("VALUE", value))
        if found:
            reimport(monkeypatch, plugin, EVALUATIONS, "fingerprint_test_eval")
        found.append(
            {(j.row_name, j.evaluation_name): j.key for j in expand_jobs(load_suite(path), "cpu")}
        )
    assert found[0][("cnn", "fingerprint_test_eval")] != found[1][("cnn", "fingerprint_test_eval")]
    assert found[0][("cnn", "clean")] == found[1][("cnn", "clean")]  # the project's own: unchanged


def test_a_dataset_without_a_fingerprint_is_keyed_by_the_files_under_its_root(tmp_path):
    """A plugin dataset that declares no fingerprint: editing a file it reads under its root
    changes its key (it used to be keyed by loader code and root alone, serving old numbers)."""
    from benchmark.datasets.base import register_dataset

    root = tmp_path / "plugin_data"
    root.mkdir()
    (root / "labels.txt").write_text("0 1 2\n")

    @register_dataset("fingerprintless_test_data", "a plugin dataset without a fingerprint")
    def _load(options, split):  # pragma: no cover - never loaded here
        raise AssertionError

    try:
        first = dataset_fingerprint("fingerprintless_test_data", "test", root=str(root))
        assert first == dataset_fingerprint("fingerprintless_test_data", "test", root=str(root))
        (root / "labels.txt").write_text("0 1 3\n")
        assert dataset_fingerprint("fingerprintless_test_data", "test", root=str(root)) != first
        absent = dataset_fingerprint("fingerprintless_test_data", "test", root=str(tmp_path / "x"))
        assert absent["files"] is None  # nothing under a missing root: code and root only
    finally:
        DATASETS._entries.pop("fingerprintless_test_data", None)
