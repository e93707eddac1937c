"""The model registry: one decorator turns a builder function into a suite-usable model.

A builder is a plain function ``(num_classes, in_channels, **params) -> nn.Module`` returning
a network that takes *normalized* input and returns logits. The registry wraps it in
:class:`NormalizedModel`, which owns the dataset's mean/std as buffers, so every registered
model obeys the contract in SPECS.md: input in [0, 1], NCHW, normalization inside, logits out.

Example::

    @register_model("my_net", "my network for CIFAR")
    def my_net(num_classes: int, in_channels: int, *, depth: int = 8) -> nn.Module: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from benchmark.datasets.base import DataInfo
from benchmark.errors import BenchmarkError
from benchmark.fingerprints import source_digest
from benchmark.registry import Entry, Registry, params_model_from_signature

Builder = Callable[..., nn.Module]
MODELS: Registry[Builder] = Registry("model")
# Filled in from the data, never from suite params. ``input_std`` is optional: builders that
# express a quantity in [0, 1] pixel units (e.g. the KAP paper's input noise) declare it to
# learn the per-channel std the wrapper divides by.
_DATA_ARGUMENTS = {"num_classes", "in_channels", "input_std"}


def register_model(
    key: str,
    description: str,
    *,
    randomized: bool = False,
    added_params: dict[str, Any] | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``key``.

    ``randomized`` declares that the model's output is stochastic at evaluation time (MC
    dropout, test-time noise); attacks then use EOT and the leaderboard marks the row.
    ``added_params`` names parameters added to an existing builder, with the default that
    reproduces its old network: at that value they stay out of cache keys (see
    :func:`key_params`), so adding an option does not retrain or re-evaluate old suites.

    The SHA-256 of the file defining ``builder`` is read now, from the code being imported,
    and enters every cache key of the model (:func:`model_code_version`).
    """

    def decorator(builder: Builder) -> Builder:
        params = params_model_from_signature(builder, skip=_DATA_ARGUMENTS)
        extras = {
            "randomized": randomized,
            "added_params": dict(added_params or {}),
            "code": source_digest(builder),
        }
        MODELS.add(Entry(key, builder, description, params, extras))
        return builder

    return decorator


def model_code_version(key: str) -> str:
    """The code version of model ``key`` in cache keys (job keys and checkpoint keys): the
    SHA-256 of the source file defining its builder, as imported by this process.

    For a plugin that is the plugin file, so editing its network (its ``forward``, say)
    recomputes its results and retrains its checkpoints instead of serving old numbers. For
    the project's own models it is their module: *any* edit of ``models/resnet.py``, even a
    comment, invalidates the cached results of every model it defines; that is intended
    (a cache cannot tell a harmless edit from one that changes numbers). Only that one file
    is hashed: code it imports (``models/layers``, ``torch``) is not.
    """
    entry = MODELS.get(key)
    return entry.extras.get("code") or source_digest(entry.obj)


def key_params(key: str, params: dict[str, Any]) -> dict[str, Any]:
    """The fully-defaulted parameters of model ``key`` that identify it in cache keys:
    every parameter, except ``added_params`` left at their backward-compatible value."""
    entry = MODELS.get(key)
    full = entry.params_model.model_validate(params).model_dump()
    added = entry.extras.get("added_params", {})
    return {k: v for k, v in full.items() if not (k in added and v == added[k])}


class NormalizedModel(nn.Module):
    """``backbone((x - mean) / std)``: the normalization is part of the model, never the data."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.randomized = False
        self.channels_last = False

    def use_channels_last(self) -> NormalizedModel:
        """Store convolution weights NHWC and feed the backbone NHWC inputs.

        Both are needed: with NHWC weights but NCHW inputs every convolution converts formats
        and runs slower than plain NCHW (measured in benchmarks/attacks.py); with both it runs
        oneDNN's / cuDNN's faster NHWC kernels. Attacks keep handing NCHW tensors in, so the
        conversion happens here, once per forward pass, on the input only.
        """
        # Module.to takes memory_format (documented, and handled at run time), but torch's
        # typing overloads of Module.to leave it out.
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.channels_last = True
        return self

    def use_contiguous(self) -> NormalizedModel:
        """Undo :meth:`use_channels_last`: NCHW weights and inputs again (same values)."""
        self.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        self.channels_last = False
        return self

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self._prepare(x))

    @property
    def bpda_forward(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The backbone's declared BPDA forward behind the same normalization, or None
        (see benchmark/attacks/bpda.py): a network that quantizes its input declares the
        approximation once, whichever normalization the registry puts in front of it."""
        declared = getattr(self.backbone, "bpda_forward", None)
        if not callable(declared):
            return None
        return lambda x: declared(self._prepare(x))


# (mean, std) per channel, or "none" for inputs that reach the network unnormalized
Normalization = tuple[tuple[float, ...], tuple[float, ...]] | Literal["none"]


def build_model(
    key: str, params: dict[str, Any], info: DataInfo, *, normalization: Normalization | None = None
) -> NormalizedModel:
    """Instantiate registered model ``key`` for data described by ``info`` (random weights).

    ``normalization`` replaces the dataset's statistics: a checkpoint trained elsewhere
    expects its own (e.g. ImageNet's for the akamaster ResNets), and feeding it differently
    normalized inputs silently costs accuracy rather than failing.
    """
    entry = MODELS.get(key)
    validated = entry.params_model.model_validate(params)
    if normalization is None:
        mean, std = info.mean, info.std
    elif normalization == "none":
        mean, std = (0.0,) * info.in_channels, (1.0,) * info.in_channels
    else:
        mean, std = normalization
    if len(mean) != info.in_channels or len(std) != info.in_channels:
        raise BenchmarkError(
            f"model '{key}': normalization has {len(mean)} mean / {len(std)} std values, "
            f"expected one per input channel ({info.in_channels})"
        )
    data: dict[str, Any] = {"num_classes": info.num_classes, "in_channels": info.in_channels}
    if "input_std" in inspect.signature(entry.obj).parameters:
        data["input_std"] = tuple(std)
    backbone = entry.obj(**data, **validated.model_dump())
    if entry.extras.get("unit_input"):  # normalizes inside already (e.g. RobustBench models)
        model = NormalizedModel(backbone, (0.0,) * len(mean), (1.0,) * len(std))
    else:
        model = NormalizedModel(backbone, tuple(mean), tuple(std))
    model.randomized = bool(entry.extras.get("randomized", False))
    if any(isinstance(m, LazyModuleMixin) for m in model.modules()):
        # Materialize lazy layers now (one dummy pass) so weights can be loaded, copied and
        # checked like any other model's.
        was_training = model.training
        with torch.no_grad():
            model.eval()(torch.zeros(1, info.in_channels, *info.image_size))
        model.train(was_training)
    return model
