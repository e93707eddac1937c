"""In-memory image datasets and the dataset registry.

Data are kept as tensors (float32 in [0, 1], NCHW) rather than a DataLoader of PIL images: the
evaluation sets we use fit in memory, and slicing a tensor costs nothing next to a forward
pass. Normalization statistics travel with the dataset but are applied *inside* the model
(the model contract in SPECS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from benchmark.errors import BenchmarkError
from benchmark.fingerprints import files_fingerprint, source_digest
from benchmark.registry import Entry, Registry, StrictParams

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class DataInfo:
    """What a model builder needs to know about the data."""

    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ArrayDataset:
    """Images ``x`` (float32, [0, 1], NCHW), labels ``y`` (int64) and their dataset indices."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    info: DataInfo
    indices: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"bad dataset shapes x={tuple(self.x.shape)} y={tuple(self.y.shape)}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def slice(self, start: int, stop: int) -> ArrayDataset:
        """Examples ``start:stop`` in order: one shard of a sharded evaluation."""
        part = slice(start, stop)
        return ArrayDataset(
            self.name, self.split, self.x[part], self.y[part], self.info, self.indices[part]
        )

    def subset(self, n: int | None, seed: int) -> ArrayDataset:
        """The first ``n`` examples of a seeded permutation: the same images for every model."""
        if n is None or n >= len(self):
            return self
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(self), generator=generator)[:n].sort().values
        return ArrayDataset(
            self.name, self.split, self.x[chosen], self.y[chosen], self.info, self.indices[chosen]
        )

    def split_off(self, n: int, seed: int) -> tuple[ArrayDataset, ArrayDataset]:
        """A seeded draw of ``n`` examples and the remaining ones, each in dataset order:
        the held-out fitting set of post-hoc methods and the evaluation set it leaves."""
        if not 1 <= n < len(self):
            raise ValueError(f"cannot hold out {n} of {len(self)} examples")
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator)
        held, rest = order[:n].sort().values, order[n:].sort().values
        return tuple(  # type: ignore[return-value]
            ArrayDataset(self.name, self.split, self.x[i], self.y[i], self.info, self.indices[i])
            for i in (held, rest)
        )


class DatasetOptions(StrictParams):
    """Options every loader receives (mirrors the suite's ``dataset`` section)."""

    root: str = "data"
    download: bool = False


Loader = Callable[[DatasetOptions, Split], ArrayDataset]
# (options, split) -> JSON-serialisable fingerprint of the content ``loader`` reads for it
Fingerprint = Callable[[DatasetOptions, Split], Any]
DATASETS: Registry[Loader] = Registry("dataset")


def register_dataset(
    key: str,
    description: str,
    *,
    info: DataInfo | None = None,
    fingerprint: Fingerprint | None = None,
) -> Callable[[Loader], Loader]:
    """Register ``loader`` under ``key``. ``info``, when the statistics are fixed, lets a
    suite be checked against the data (e.g. normalization lengths) without loading it.

    ``fingerprint`` identifies the *content* a split is read from, for cache keys: for files,
    :func:`benchmark.fingerprints.files_fingerprint` of the files the split reads (cheap
    after the first call), never the ``root`` they lie under. Without one, a dataset is keyed
    by its loader's source file, its ``root`` and every file under it (see
    :func:`dataset_fingerprint`)."""

    def decorator(loader: Loader) -> Loader:
        extras = {"info": info, "fingerprint": fingerprint, "code": source_digest(loader)}
        DATASETS.add(Entry(key, loader, description, DatasetOptions, extras))
        return loader

    return decorator


def dataset_fingerprint(
    name: str, split: Split, *, root: str = "data", download: bool = False
) -> dict[str, Any]:
    """What identifies split ``split`` of dataset ``name`` in cache keys: the fingerprint of
    its content when the dataset declares one (downloading missing files first when
    ``download``; missing files are an error, as loading would be), else its loader's source
    file, ``root`` and the files under it (a plugin's dataset: keyed by all it might read)."""
    entry = DATASETS.get(name)
    fingerprint = entry.extras.get("fingerprint")
    if fingerprint is None:
        code = entry.extras.get("code") or source_digest(entry.obj)
        return {"loader_code": code, "root": root, "files": root_files_fingerprint(root)}
    return {"content": fingerprint(DatasetOptions(root=root, download=download), split)}


MAX_ROOT_FILES = 100_000


def root_files_fingerprint(root: str) -> dict[str, Any] | None:
    """Every file under ``root`` (size and SHA-256, cached per file), for a dataset that
    declares no fingerprint of its own: an edited or replaced file then changes its key
    instead of serving results computed on the old one. None when ``root`` is no folder (a
    dataset that generates its data reads nothing there)."""
    folder = Path(root)
    if not folder.is_dir():
        return None
    names = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            names.append(path.relative_to(folder).as_posix())
            if len(names) > MAX_ROOT_FILES:
                raise BenchmarkError(
                    f"dataset root {root}: more than {MAX_ROOT_FILES} files to fingerprint; "
                    "give the dataset a fingerprint (register_dataset(..., fingerprint=...)) "
                    "naming the files it reads"
                )
    return files_fingerprint(folder, names)


def load_dataset(
    name: str, split: Split, *, root: str = "data", download: bool = False
) -> ArrayDataset:
    entry = DATASETS.get(name)
    data = entry.obj(DatasetOptions(root=root, download=download), split)
    check_dataset(data)
    return data


def check_dataset(data: ArrayDataset) -> None:
    """Refuse data that would yield meaningless numbers rather than an error: NaN/inf or
    out-of-range pixels (attacks clamp to [0, 1]) and labels outside the class range."""
    where = f"dataset '{data.name}' split '{data.split}'"
    if not torch.isfinite(data.x).all():
        bad = int((~torch.isfinite(data.x)).flatten(1).any(1).sum())
        raise BenchmarkError(f"{where}: {bad} image(s) contain NaN or inf values")
    if len(data) and (data.x.min() < 0 or data.x.max() > 1):
        raise BenchmarkError(
            f"{where}: pixel values must lie in [0, 1] "
            f"(found {float(data.x.min()):.3g}..{float(data.x.max()):.3g})"
        )
    if len(data) and (data.y.min() < 0 or data.y.max() >= data.info.num_classes):
        raise BenchmarkError(f"{where}: labels outside 0..{data.info.num_classes - 1}")


def split_indices(n: int, n_val: int, n_test: int, seed: int) -> dict[str, torch.Tensor]:
    """Fixed, seeded train/val/test index split for datasets that ship without one."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return {
        "test": order[:n_test].sort().values,
        "val": order[n_test : n_test + n_val].sort().values,
        "train": order[n_test + n_val :].sort().values,
    }


def train_val_indices(n: int, split: Split, n_val: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``split`` ("train" or "val") in a fixed, seeded train/val split of
    ``n`` training examples: ``n_val`` for validation, or 10% when there are fewer than
    ``10 * n_val`` (tiny test fixtures)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = n_val if n >= 10 * n_val else n // 10
    chosen = order[:n_val] if split == "val" else order[n_val:]
    return chosen.sort().values
