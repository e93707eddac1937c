"""CIFAR-100 from files the test writes in the official ``cifar-100-python`` layout (python
pickles with bytes keys, fine and coarse labels), through the real loader: splits, labels of
both granularities, content fingerprints, one-line errors; and as the OOD set of a suite."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from benchmark.datasets import load_dataset
from benchmark.datasets.base import dataset_fingerprint
from benchmark.errors import BenchmarkError


def write_cifar100(root: Path, n_train: int = 120, n_test: int = 40, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        coarse = [f // 5 for f in fine]  # any 0..19 labels do for the loader
        with open(folder / name, "wb") as handle:
            pickle.dump(
                {
                    b"filenames": [f"{i}.png".encode() for i in range(n)],
                    b"batch_label": name.encode(),
                    b"fine_labels": fine,
                    b"coarse_labels": coarse,
                    b"data": data,
                },
                handle,
                protocol=2,
            )
        written[name] = (data, fine, coarse)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [], b"coarse_label_names": []}, handle, protocol=2)
    return written


def test_splits_labels_and_pixels_follow_the_files(tmp_path):
    written = write_cifar100(tmp_path)
    test = load_dataset("cifar100", "test", root=str(tmp_path))
    data, fine, coarse = written["test"]
    assert test.x.shape == (40, 3, 32, 32) and test.info.num_classes == 100
    assert test.y.tolist() == fine
    np.testing.assert_array_equal((test.x[0] * 255).round().byte().numpy().reshape(-1), data[0])
    assert load_dataset("cifar100_coarse", "test", root=str(tmp_path)).y.tolist() == coarse
    train = load_dataset("cifar100", "train", root=str(tmp_path))
    val = load_dataset("cifar100", "val", root=str(tmp_path))
    assert len(train) + len(val) == 120 and len(val) == 12  # 10 % of a tiny training set
    assert set(train.indices.tolist()).isdisjoint(val.indices.tolist())


def test_fingerprints_follow_the_file_a_split_reads(tmp_path):
    write_cifar100(tmp_path)
    test = dataset_fingerprint("cifar100", "test", root=str(tmp_path))
    train = dataset_fingerprint("cifar100", "train", root=str(tmp_path))
    assert list(test["content"]["files"]) == ["test"] and "split" in train["content"]
    write_cifar100(tmp_path, seed=1)  # new pixels and labels in both files
    assert dataset_fingerprint("cifar100", "test", root=str(tmp_path)) != test


def test_missing_files_and_bad_labels_are_one_line(tmp_path):
    with pytest.raises(BenchmarkError, match="CIFAR-100 not found") as missing:
        load_dataset("cifar100", "test", root=str(tmp_path))
    assert "\n" not in str(missing.value)
    write_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "test"
    batch = pickle.loads(path.read_bytes())
    batch[b"fine_labels"][0] = 100
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(BenchmarkError, match=r"labels must lie in 0\.\.99"):
        load_dataset("cifar100", "test", root=str(tmp_path))


def test_cifar100_is_an_ood_set_for_a_cifar10_suite(tmp_path, write_suite, cifar_root):
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite

    root, _ = cifar_root
    write_cifar100(tmp_path / "c100")
    suite = {
        "name": "ood100",
        "seed": 0,
        "device": "cpu",
        "batch_size": 32,
        "sanity": False,
        "dataset": {"name": "cifar10", "root": str(root), "split": "test"},
        "models": [
            {"name": "rn", "model": "resnet20", "params": {"width": 0.25}, "random_init": True}
        ],
        "evaluations": [
            {
                "type": "ood_detection",
                "name": "ood100",
                "params": {"dataset": "cifar100", "root": str(tmp_path / "c100")},
            }
        ],
        "output_dir": str(tmp_path / "run"),
        "leaderboard_dir": str(tmp_path / "board"),
    }
    summary = run_suite(load_suite(write_suite(suite)), progress=False, log=lambda _: None)
    row = summary.leaderboard.iloc[0]
    assert 0 <= row["ood100_msp_auroc_pct"] <= 100 and 0 <= row["ood100_entropy_auroc_pct"] <= 100
