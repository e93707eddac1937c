"""Datasets: the registry plus the built-in loaders (importing this module registers them)."""

from benchmark.datasets import cifar10, cifar100, digits, mnist
from benchmark.datasets.base import (
    DATASETS,
    ArrayDataset,
    DataInfo,
    DatasetOptions,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DataInfo",
    "DatasetOptions",
    "cifar10",
    "cifar100",
    "digits",
    "load_dataset",
    "mnist",
    "register_dataset",
]
