"""Spatial-smoothing and MC-dropout ResNets (seeds/spatial-smoothing-blurs-behave-like-ensembles
.txt; reference code xxxnell/spatial-smoothing).

- ``smooth_resnet18/20``: one ``Smooth = Blur o Prob`` after each stage, i.e. before each
  downsampling and before the global-average-pool head (Sec. 2.2: four for ResNet-18; three
  for the three-stage ResNet-20).
- ``mcdo_resnet18/20``: MC dropout, "each block ... contains one MC dropout layer" following
  Zagoruyko & Komodakis (App. A); as in the reference ``resnet_mcdo_block.BasicBlock`` it sits
  between the first conv-BN-ReLU and the second convolution, rate 0.3 for CIFAR, and stays on
  at test time. Registered ``randomized``: the clean evaluation averages the softmax of
  ``n_samples`` passes (the paper's ensemble size N, default 50).
- ``mcdo_smooth_resnet18/20``: both.
"""

from __future__ import annotations

from torch import nn

from models.layers import MCDropout, Smooth
from models.layers.smoothing import BlurPadding, BlurSize, ProbKind
from models.registry import Builder, register_model
from models.resnet import ARCHITECTURES, ResNetHooks, cifar_resnet, identity_factory


def smoothing_hooks(
    dropout: float | None,
    smooth: bool,
    tau: float = 10.0,
    prob: ProbKind = "tanh",
    blur: BlurSize = 2,
    blur_padding: BlurPadding = "reference",
) -> ResNetHooks:
    """MC dropout inside every block (if ``dropout`` is given), Smooth after every stage."""
    return ResNetHooks(
        between_convs=(lambda _: MCDropout(dropout)) if dropout is not None else identity_factory,
        after_stage=(lambda _: Smooth(tau, prob, blur, blur_padding))
        if smooth
        else identity_factory,
    )


def _smooth_builder(depth: int) -> Builder:
    def build(
        num_classes: int,
        in_channels: int,
        *,
        width: float = 1.0,
        tau: float = 10.0,
        prob: ProbKind = "tanh",
        blur: BlurSize = 2,
        blur_padding: BlurPadding = "reference",
    ) -> nn.Module:
        hooks = smoothing_hooks(None, True, tau, prob, blur, blur_padding)
        return cifar_resnet(depth, width, num_classes, in_channels, hooks)

    build.__name__ = f"smooth_resnet{depth}"
    return build


def _mcdo_builder(depth: int) -> Builder:
    def build(
        num_classes: int, in_channels: int, *, width: float = 1.0, dropout: float = 0.3
    ) -> nn.Module:
        return cifar_resnet(depth, width, num_classes, in_channels, smoothing_hooks(dropout, False))

    build.__name__ = f"mcdo_resnet{depth}"
    return build


def _mcdo_smooth_builder(depth: int) -> Builder:
    def build(
        num_classes: int,
        in_channels: int,
        *,
        width: float = 1.0,
        dropout: float = 0.3,
        tau: float = 10.0,
        prob: ProbKind = "tanh",
        blur: BlurSize = 2,
        blur_padding: BlurPadding = "reference",
    ) -> nn.Module:
        hooks = smoothing_hooks(dropout, True, tau, prob, blur, blur_padding)
        return cifar_resnet(depth, width, num_classes, in_channels, hooks)

    build.__name__ = f"mcdo_smooth_resnet{depth}"
    return build


for _depth in ARCHITECTURES:
    register_model(
        f"smooth_resnet{_depth}",
        f"ResNet-{_depth} + spatial smoothing (Blur o Prob) after each stage",
    )(_smooth_builder(_depth))
    register_model(
        f"mcdo_resnet{_depth}",
        f"ResNet-{_depth} with MC dropout in every block (on at test time)",
        randomized=True,
    )(_mcdo_builder(_depth))
    register_model(
        f"mcdo_smooth_resnet{_depth}",
        f"ResNet-{_depth} with MC dropout in every block + spatial smoothing after each stage",
        randomized=True,
    )(_mcdo_smooth_builder(_depth))
