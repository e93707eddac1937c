"""MNIST: strict IDX parsing of gzip files written on the fly, the folder rule, splits, clear
one-line errors, mirror download with MD5 check (urlopen monkeypatched) and, when the shared
reference data are present, the real official test set."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.datasets import DATASETS, load_dataset, mnist
from benchmark.errors import BenchmarkError

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
N_TRAIN, N_TEST = 40, 30


def idx_images(images: np.ndarray, magic: int = 2051) -> bytes:
    header = [magic, *images.shape]
    return b"".join(v.to_bytes(4, "big") for v in header) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 2049) -> bytes:
    return (
        magic.to_bytes(4, "big")
        + len(labels).to_bytes(4, "big")
        + labels.astype(np.uint8).tobytes()
    )


def write_gz(path: Path, raw: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gzip.compress(raw, mtime=0)
    path.write_bytes(data)
    return data


def make_mnist(folder: Path, seed: int = 0, splits=("train", "test")) -> dict[str, object]:
    """Tiny MNIST in the official file format; returns arrays and the gz bytes per file."""
    rng = np.random.default_rng(seed)
    out: dict[str, object] = {}
    for split in splits:
        n = N_TRAIN if split == "train" else N_TEST
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0] = 0
        images[1] = 255  # both ends of the pixel range
        labels = np.arange(n, dtype=np.uint8) % 10
        rng.shuffle(labels)
        img_name, lab_name = mnist.FILES[split]
        out[img_name] = write_gz(folder / img_name, idx_images(images))
        out[lab_name] = write_gz(folder / lab_name, idx_labels(labels))
        out[split] = (images, labels)
    return out


def test_registered():
    assert "mnist" in DATASETS
    assert DATASETS.get("mnist").extras["info"] == mnist.MNIST_INFO  # suite checks, no load


def test_test_split_reads_fixture(tmp_path):
    written = make_mnist(tmp_path / "mnist")
    test = load_dataset("mnist", "test", root=str(tmp_path))
    images, labels = written["test"]
    assert test.x.shape == (N_TEST, 1, 28, 28) and test.x.dtype == torch.float32
    assert test.y.dtype == torch.int64 and test.y.tolist() == labels.tolist()
    assert torch.equal(test.x[:, 0], torch.from_numpy(images).float() / 255)
    assert test.x[0].max() == 0 and test.x[1].min() == 1
    assert test.x[5, 0, 3, 7].item() == pytest.approx(images[5, 3, 7] / 255)
    assert test.indices.tolist() == list(range(N_TEST))
    info = test.info
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 1, (28, 28))
    assert info.mean == (0.1307,) and info.std == (0.3081,)


def test_train_val_split_is_fixed_disjoint_and_independent_of_suite_seed(tmp_path):
    written = make_mnist(tmp_path / "mnist")
    torch.manual_seed(123)
    train = load_dataset("mnist", "train", root=str(tmp_path))
    val = load_dataset("mnist", "val", root=str(tmp_path))
    assert len(train) == N_TRAIN - N_TRAIN // 10 and len(val) == N_TRAIN // 10
    assert sorted(train.indices.tolist() + val.indices.tolist()) == list(range(N_TRAIN))
    images, labels = written["train"]
    assert val.y.tolist() == labels[val.indices.numpy()].tolist()
    assert torch.equal(train.x[:, 0], torch.from_numpy(images[train.indices.numpy()]) / 255.0)
    torch.manual_seed(456)
    assert torch.equal(load_dataset("mnist", "val", root=str(tmp_path)).indices, val.indices)


def test_full_size_training_files_split_55k_5k(tmp_path):
    # 60,000 blank images compress to almost nothing; the labels tell the examples apart
    folder = tmp_path / "mnist"
    labels = np.arange(60000) % 10
    write_gz(folder / "train-images-idx3-ubyte.gz", idx_images(np.zeros((60000, 28, 28))))
    write_gz(folder / "train-labels-idx1-ubyte.gz", idx_labels(labels))
    train = load_dataset("mnist", "train", root=str(tmp_path))
    val = load_dataset("mnist", "val", root=str(tmp_path))
    assert (len(train), len(val)) == (55000, 5000)
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    assert val.y.tolist() == (val.indices % 10).tolist()
    assert train.x.shape == (55000, 1, 28, 28)


@pytest.mark.parametrize("layout", [".", "mnist", "MNIST/raw"])
def test_each_documented_layout_is_found(tmp_path, layout):
    make_mnist(tmp_path / layout)
    assert len(load_dataset("mnist", "test", root=str(tmp_path))) == N_TEST
    assert len(load_dataset("mnist", "train", root=str(tmp_path))) == N_TRAIN - N_TRAIN // 10


def test_first_folder_with_both_split_files_wins(tmp_path):
    in_root = make_mnist(tmp_path, seed=1, splits=("test",))
    in_mnist = make_mnist(tmp_path / "mnist", seed=2)
    # <root>/ holds both test files: it wins for test; only <root>/mnist/ has the train files
    test = load_dataset("mnist", "test", root=str(tmp_path))
    assert test.y.tolist() == in_root["test"][1].tolist()
    train = load_dataset("mnist", "train", root=str(tmp_path))
    assert train.y.tolist() == in_mnist["train"][1][train.indices.numpy()].tolist()
    # a split never mixes folders: images in one and labels in another is "not found"
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(BenchmarkError, match="'test' split not found"):
        load_dataset("mnist", "test", root=str(tmp_path))


def test_test_split_needs_no_training_files(tmp_path):
    make_mnist(tmp_path / "mnist", splits=("test",))
    assert len(load_dataset("mnist", "test", root=str(tmp_path))) == N_TEST
    with pytest.raises(BenchmarkError) as info:
        load_dataset("mnist", "train", root=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message and "t10k" not in message


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("urlopen must not be called")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_missing_files_offline_name_folders_and_fix(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    root = tmp_path / "nowhere"
    with pytest.raises(BenchmarkError) as info:
        load_dataset("mnist", "test", root=str(root))
    message = str(info.value)
    assert "\n" not in message
    assert f"{root / 'mnist'}/{{t10k-images-idx3-ubyte.gz,t10k-labels-idx1-ubyte.gz}}" in message
    for folder in (root, root / "mnist", root / "MNIST" / "raw"):
        assert f"{folder}/" in message
    assert "download: true" in message and "copy the official gzip files" in message


def _corrupt(tmp_path, name: str, raw: bytes | None = None, gz: bytes | None = None) -> str:
    make_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / name
    if gz is not None:
        path.write_bytes(gz)
    else:
        write_gz(path, raw)
    split = "test" if name.startswith("t10k") else "train"
    with pytest.raises(BenchmarkError) as info:
        load_dataset("mnist", split, root=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


IMAGES = np.zeros((N_TEST, 28, 28), dtype=np.uint8)
LABELS = np.arange(N_TEST, dtype=np.uint8) % 10


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("t10k-images-idx3-ubyte.gz", idx_images(IMAGES, magic=2049), "magic number 2051, found"),
        ("t10k-labels-idx1-ubyte.gz", idx_labels(LABELS, magic=2051), "magic number 2049, found"),
        ("t10k-images-idx3-ubyte.gz", idx_images(IMAGES)[:1000], r"truncated IDX file \(header"),
        ("t10k-images-idx3-ubyte.gz", idx_images(IMAGES)[:10], "truncated IDX header"),
        ("t10k-images-idx3-ubyte.gz", b"\x00\x00", "too short for a header"),
        ("t10k-labels-idx1-ubyte.gz", idx_labels(LABELS)[:20], "truncated IDX file"),
        ("t10k-images-idx3-ubyte.gz", idx_images(IMAGES) + b"x", "unexpected data after"),
        ("t10k-images-idx3-ubyte.gz", idx_images(np.zeros((3, 32, 32))), "expected 28x28"),
        ("t10k-images-idx3-ubyte.gz", idx_images(np.zeros((0, 28, 28))), r"expected 1\.\."),
        ("t10k-labels-idx1-ubyte.gz", idx_labels(LABELS[:7]), "7 labels, but"),
        ("t10k-labels-idx1-ubyte.gz", idx_labels(LABELS + 1), r"labels outside 0\.\.9"),
        ("train-images-idx3-ubyte.gz", idx_images(IMAGES, magic=0), "magic number 2051"),
    ],
)
def test_malformed_idx_is_a_one_line_error(tmp_path, name, raw, expected):
    message = _corrupt(tmp_path, name, raw=raw)
    assert re.search(expected, message), message


def test_huge_header_is_refused_without_allocating(tmp_path):
    raw = b"".join(v.to_bytes(4, "big") for v in (2051, 2**32 - 1, 28, 28))
    assert "IDX header declares 4294967295 images" in _corrupt(
        tmp_path, "t10k-images-idx3-ubyte.gz", raw=raw
    )


@pytest.mark.parametrize("cut", [5, 40, -9])
def test_truncated_or_invalid_gzip_is_a_one_line_error(tmp_path, cut):
    gz = gzip.compress(idx_images(IMAGES + 7), mtime=0)
    message = _corrupt(tmp_path, "t10k-images-idx3-ubyte.gz", gz=gz[:cut])
    assert "not a valid gzip file" in message


def test_uncompressed_file_under_gz_name_is_refused(tmp_path):
    message = _corrupt(tmp_path, "t10k-images-idx3-ubyte.gz", gz=idx_images(IMAGES))
    assert "gzip-compressed IDX" in message


class _Response(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _serve(monkeypatch, files: dict[str, bytes], *, down: tuple[str, ...] = ()) -> list[str]:
    """Patch urlopen to serve ``files`` by name on every mirror except those in ``down``."""
    calls: list[str] = []

    def urlopen(url, timeout=None):
        calls.append(url)
        if url.startswith(down):
            raise urllib.error.URLError("mirror is down")
        name = url.rsplit("/", 1)[1]
        if name not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return _Response(files[name])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def _fixture_md5(monkeypatch, source: dict[str, object]) -> None:
    for name in mnist.MD5:
        monkeypatch.setitem(mnist.MD5, name, hashlib.md5(source[name]).hexdigest())


def test_download_fetches_missing_files_of_the_split_and_verifies_md5(tmp_path, monkeypatch):
    source = make_mnist(tmp_path / "source")
    _fixture_md5(monkeypatch, source)
    calls = _serve(monkeypatch, {n: source[n] for n in mnist.MD5}, down=(mnist.MIRRORS[0],))
    root = tmp_path / "data"
    test = load_dataset("mnist", "test", root=str(root), download=True)
    assert test.y.tolist() == source["test"][1].tolist()
    folder = root / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(mnist.FILES["test"])
    assert (folder / "t10k-images-idx3-ubyte.gz").read_bytes() == source[
        "t10k-images-idx3-ubyte.gz"
    ]
    # each file: first mirror down, second serves it; the training files were not needed
    assert [c.rsplit("/", 1)[1] for c in calls[1::2]] == list(mnist.FILES["test"])
    assert all(c.startswith(mnist.MIRRORS[1]) for c in calls[1::2])
    calls.clear()
    assert len(load_dataset("mnist", "test", root=str(root), download=True)) == N_TEST
    assert calls == []  # present files are not fetched again
    train = load_dataset("mnist", "train", root=str(root), download=True)
    assert len(train) == N_TRAIN - N_TRAIN // 10
    assert len(list(folder.iterdir())) == 4


def test_download_completes_a_torchvision_folder_in_place(tmp_path, monkeypatch):
    source = make_mnist(tmp_path / "source")
    _fixture_md5(monkeypatch, source)
    make_mnist(tmp_path / "MNIST" / "raw", splits=("test",))
    _serve(monkeypatch, {n: source[n] for n in mnist.MD5})
    load_dataset("mnist", "train", root=str(tmp_path), download=True)
    assert (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").is_file()
    assert not (tmp_path / "mnist").exists()


def test_download_with_wrong_md5_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    source = make_mnist(tmp_path / "source")
    _fixture_md5(monkeypatch, source)
    monkeypatch.setitem(mnist.MD5, "t10k-images-idx3-ubyte.gz", "0" * 32)
    _serve(monkeypatch, {n: source[n] for n in mnist.MD5})
    root = tmp_path / "data"
    with pytest.raises(BenchmarkError) as info:
        load_dataset("mnist", "test", root=str(root), download=True)
    message = str(info.value)
    assert "\n" not in message and "could not fetch t10k-images-idx3-ubyte.gz" in message
    assert message.count("expected " + "0" * 32 + "; refusing to use it") == len(mnist.MIRRORS)
    assert list((root / "mnist").iterdir()) == []  # no stray temporary or unverified file


def test_download_with_every_mirror_down_names_each_url(tmp_path, monkeypatch):
    _serve(monkeypatch, {}, down=tuple(mnist.MIRRORS))
    with pytest.raises(BenchmarkError) as info:
        load_dataset("mnist", "test", root=str(tmp_path), download=True)
    message = str(info.value)
    assert "\n" not in message and "mirror is down" in message
    for mirror in mnist.MIRRORS:
        assert f"{mirror}t10k-images-idx3-ubyte.gz" in message


def test_official_md5_table():
    # as in torchvision.datasets.MNIST.resources
    assert mnist.MD5 == {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


needs_shared = pytest.mark.skipif(
    not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"reference MNIST test files not found at {SHARED_MNIST}",
)


@needs_shared
def test_shared_files_have_official_md5():
    for name in mnist.FILES["test"]:
        assert mnist.md5sum(SHARED_MNIST / name) == mnist.MD5[name], name


@needs_shared
def test_real_test_split_loads(monkeypatch):
    _no_network(monkeypatch)
    test = load_dataset("mnist", "test", root=str(SHARED_MNIST.parent))  # <root>/mnist/
    assert test.x.shape == (10000, 1, 28, 28) and test.x.dtype == torch.float32
    assert torch.bincount(test.y, minlength=10).tolist() == OFFICIAL_TEST_COUNTS
    assert test.x.min() == 0 and test.x.max() == 1
    assert test.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first digits
    # test-set statistics sit next to the training ones used for normalization
    assert test.x.mean().item() == pytest.approx(0.1325, abs=1e-3)
    assert test.x.std().item() == pytest.approx(0.3105, abs=1e-3)
    same = load_dataset("mnist", "test", root=str(SHARED_MNIST))  # <root>/ itself
    assert torch.equal(same.x, test.x)
    with pytest.raises(BenchmarkError, match=r"train-images-idx3-ubyte\.gz"):
        load_dataset("mnist", "val", root=str(SHARED_MNIST.parent))
