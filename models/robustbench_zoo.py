"""RobustBench zoo models as registry entries ``robustbench:<model_name>``.

The entry is built on demand for any name (the zoo is large and remote, so nothing is listed
up front). Building the model imports the ``robustbench`` package and calls its
``load_model``, which downloads the weights into ``model_dir`` on first use. RobustBench
models take inputs in [0, 1] and normalize inside, so the entry is marked ``unit_input`` and
the registry's wrapper applies no second normalization.

Why the failure messages matter: robustbench 1.1.1 on PyPI does not import -- it needs a
module ``autoattack`` that no PyPI package provides (the AutoAttack authors publish it only
on GitHub) -- and the weights need network access. Both cases stop the run with one line
that says which of the two happened and what to do.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.registry import Entry, params_model_from_signature
from models.registry import _DATA_ARGUMENTS, MODELS

PREFIX = "robustbench"
ThreatModel = Literal["Linf", "L2", "corruptions"]


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def load_robustbench_model(name: str, dataset: str, threat_model: str, model_dir: str) -> nn.Module:
    """``robustbench.utils.load_model`` with one-line errors instead of tracebacks."""
    key = f"{PREFIX}:{name}"
    try:
        from robustbench.utils import load_model
    except Exception as exc:  # ImportError, or whatever its import chain raises
        raise BenchmarkError(
            f"{key}: the 'robustbench' package does not import ({_one_line(exc)}); "
            "robustbench 1.1.1 from PyPI needs a module 'autoattack' that no PyPI package "
            "provides: install RobustBench and AutoAttack from their GitHub repositories"
        ) from None
    try:
        model = load_model(
            model_name=name, model_dir=model_dir, dataset=dataset, threat_model=threat_model
        )
    except Exception as exc:  # unknown name, no network, bad download
        raise BenchmarkError(
            f"{key}: RobustBench could not load it ({_one_line(exc)}); check the model name, "
            "dataset and threat model, and that this machine is online"
        ) from None
    return model


def _builder(name: str):
    def robustbench_model(
        num_classes: int,
        in_channels: int,
        *,
        dataset: str = "cifar10",
        threat_model: ThreatModel = "Linf",
        model_dir: str = "models/robustbench",
    ) -> nn.Module:
        return load_robustbench_model(name, dataset, threat_model, model_dir)

    return robustbench_model


def resolve(key: str) -> Entry:
    name = key.partition(":")[2]
    if not name or any(ch in name for ch in "/\\ "):
        raise BenchmarkError(f"'{key}': give a RobustBench model name, e.g. robustbench:Standard")
    builder = _builder(name)
    params = params_model_from_signature(builder, skip=_DATA_ARGUMENTS)
    description = f"RobustBench zoo model '{name}' (needs the robustbench package and network)"
    return Entry(key, builder, description, params, {"randomized": False, "unit_input": True})


MODELS.add_resolver(PREFIX, resolve)
