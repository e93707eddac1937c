"""Datasets: CIFAR-10 loader on a test-made fixture in the official format, download with MD5
check from a local URL, clear errors; the embedded digits default."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from benchmark.datasets import cifar10, load_dataset
from benchmark.errors import BenchmarkError


def test_cifar_loader_reads_fixture(cifar_root):
    root, batches = cifar_root
    test = load_dataset("cifar10", "test", root=str(root))
    data, labels = batches["test_batch"]
    assert test.x.shape == (20, 3, 32, 32) and test.x.dtype == torch.float32
    assert test.y.tolist() == labels
    # rows are channel-major: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    assert test.x[3, 0, 0, 0].item() == pytest.approx(data[3, 0] / 255)
    assert test.x[3, 1, 0, 0].item() == pytest.approx(data[3, 1024] / 255)
    assert test.x[3, 2, 31, 31].item() == pytest.approx(data[3, 3071] / 255)
    assert test.x[3, 0, 1, 2].item() == pytest.approx(data[3, 32 + 2] / 255)
    assert test.info.num_classes == 10 and test.info.in_channels == 3


def test_cifar_train_val_split_is_fixed_and_disjoint(cifar_root):
    root, batches = cifar_root
    train = load_dataset("cifar10", "train", root=str(root))
    val = load_dataset("cifar10", "val", root=str(root))
    assert len(train) == 90 and len(val) == 10
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    all_labels = [label for i in range(1, 6) for label in batches[f"data_batch_{i}"][1]]
    assert val.y.tolist() == [all_labels[i] for i in val.indices.tolist()]
    again = load_dataset("cifar10", "val", root=str(root))
    assert torch.equal(again.indices, val.indices)


def test_missing_cifar_offline_names_expected_path(tmp_path):
    with pytest.raises(BenchmarkError) as info:
        load_dataset("cifar10", "test", root=str(tmp_path / "nowhere"))
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "download: true" in message and "\n" not in message


def _archive(tmp_path, cifar_root) -> tuple[str, str]:
    root, _ = cifar_root
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive.as_uri(), hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_verifies_md5_and_extracts(tmp_path, cifar_root, monkeypatch):
    url, md5 = _archive(tmp_path, cifar_root)
    monkeypatch.setattr(cifar10, "URL", url)
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5)
    target = tmp_path / "downloaded"
    test = load_dataset("cifar10", "test", root=str(target), download=True)
    assert len(test) == 20
    assert (target / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_download_with_wrong_md5_is_refused(tmp_path, cifar_root, monkeypatch):
    url, _ = _archive(tmp_path, cifar_root)
    monkeypatch.setattr(cifar10, "URL", url)
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", "0" * 32)
    target = tmp_path / "downloaded"
    with pytest.raises(BenchmarkError, match=r"expected 0{32}; refusing"):
        load_dataset("cifar10", "test", root=str(target), download=True)
    assert not (target / "cifar-10-batches-py").exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_batch_pickle_that_runs_code_is_refused(cifar_root):
    root, _ = cifar_root
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({b"data": _Exploit(), b"labels": [0]}, handle)
    with pytest.raises(BenchmarkError, match="refusing to load global"):
        load_dataset("cifar10", "test", root=str(root))


def test_truncated_batch_gives_clear_error(cifar_root):
    root, _ = cifar_root
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(BenchmarkError, match="not a valid CIFAR-10 batch file"):
        load_dataset("cifar10", "test", root=str(root))


def test_digits_splits_are_fixed_disjoint_and_scaled():
    splits = {s: load_dataset("digits", s) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1257, 180, 360]
    index_sets = [set(d.indices.tolist()) for d in splits.values()]
    assert sum(len(s) for s in index_sets) == len(set().union(*index_sets)) == 1797
    test = splits["test"]
    assert test.x.shape == (360, 1, 8, 8)
    assert test.x.min() >= 0 and test.x.max() <= 1 and test.x.max() == 1
    assert torch.equal(load_dataset("digits", "test").x, test.x)
    train = splits["train"]
    assert train.x.mean().item() == pytest.approx(train.info.mean[0], abs=1e-3)
    assert train.x.std().item() == pytest.approx(train.info.std[0], abs=1e-3)


def test_subset_is_seeded_and_sorted():
    test = load_dataset("digits", "test")
    a, b = test.subset(50, seed=1), test.subset(50, seed=1)
    assert torch.equal(a.indices, b.indices) and len(a) == 50
    assert not torch.equal(a.indices, test.subset(50, seed=2).indices)
    assert np.all(np.diff(a.indices.numpy()) > 0)


def test_cifar_pixels_outside_uint8_are_refused_not_wrapped(cifar_root):
    root, batches = cifar_root
    data, labels = batches["test_batch"]
    path = root / "cifar-10-batches-py" / "test_batch"
    wide = data.astype(np.int64)
    with open(path, "wb") as handle:  # same values in a wider integer type: accepted
        pickle.dump({b"data": wide, b"labels": labels}, handle, protocol=2)
    assert np.array_equal(
        (load_dataset("cifar10", "test", root=str(root)).x * 255).round().numpy().astype(np.uint8),
        data.reshape(-1, 3, 32, 32),
    )
    wide[0, 0] = 256  # would wrap to 0 under a uint8 cast
    with open(path, "wb") as handle:
        pickle.dump({b"data": wide, b"labels": labels}, handle, protocol=2)
    with pytest.raises(BenchmarkError, match=r"0\.\.255"):
        load_dataset("cifar10", "test", root=str(root))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (lambda y: [v + 0.7 for v in y], r"labels must be integers 0\.\.9 .*dtype float64"),
        (
            lambda y: [10, *y[1:]],
            r"labels must lie in 0\.\.9 \(the 10 CIFAR-10 classes\), got 0\.\.10",
        ),
    ],
    ids=["float labels", "label 10"],
)
def test_cifar_labels_must_be_integer_classes(cifar_root, labels, message):
    """A float label 3.7 would silently become class 3 under an integer cast."""
    root, batches = cifar_root
    data, original = batches["test_batch"]
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({b"data": data, b"labels": labels(original)}, handle, protocol=2)
    with pytest.raises(BenchmarkError, match=message):
        load_dataset("cifar10", "test", root=str(root))
