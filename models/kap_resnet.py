"""KAP ResNets and the noise-trained baselines of the KAP paper (seeds/kap-kernel-average-pooling
.txt, Sec. 4.1 and Table 1).

- ``kap_resnet18/20`` ("RN18-KAP-NT(sigma)"): a :class:`KernelAvgPool` after *every*
  convolution (stem, both block convolutions, 1x1 shortcuts), K = 3, S = 1, 2-D sheet; training
  adds N(0, sigma^2) to the input image and after each KAP. ``sigma = 0`` gives "RN18-KAP".
- ``nt_resnet18/20`` ("RN18-NT(sigma)"): the plain ResNet with the same noise on the input and
  after each convolution. In the paper's notation plain ``resnet18`` is "RN18-NT" (normally
  trained); ``nt_resnet18`` with ``sigma = 0`` is exactly ``resnet18``.

Noise is active only in training mode ("the input and activation noise were only used during
model training"), so these models are deterministic at evaluation. Input noise is in [0, 1]
pixel units (``input_std`` converts it to the normalized input the backbone sees).

The models carry *all* of the paper's training noise, the input part included (an
:class:`~models.layers.InputNoise` in front of the stem), so they train as the paper's models
under any recipe. The ``gaussian_noise`` recipe recognizes that layer and adds no input noise
of its own to these models (it would otherwise be applied twice: std sqrt(2) sigma); a recipe
sigma that differs from a model's nonzero sigma is refused (models/training/noise.py).

Stride S > 1: a convolution then produces C * S (1-D) or C * S^2 (2-D, an (N_r S) x (N_c S)
sheet) channels, which KAP pools back to the C channels that BatchNorm, the residual addition
and the next layer expect. The paper only uses S = 1 in ResNets; this keeps S usable there.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from models.layers import GaussianNoise, InputNoise, KernelAvgPool, kap_sheet
from models.registry import Builder, register_model
from models.resnet import ARCHITECTURES, ResNetHooks, cifar_resnet


def input_noise(sigma: float, input_std: tuple[float, ...] | None) -> InputNoise:
    """N(0, sigma^2) on the [0, 1] image, expressed on the normalized input."""
    return InputNoise(sigma, input_std)


def kap_hooks(
    kernel_size: int,
    stride: int,
    dims: Literal[1, 2],
    sigma: float,
    input_std: tuple[float, ...] | None = None,
) -> ResNetHooks:
    """KAP (+ training noise) after every convolution, noise on the input."""

    def after_conv(channels: int) -> nn.Module:
        sheet = None
        if dims == 2:
            rows, cols = kap_sheet(channels)
            sheet = (rows * stride, cols * stride)
        kap = KernelAvgPool(channels * stride**dims, kernel_size, stride, dims, sheet)
        return nn.Sequential(kap, GaussianNoise(sigma))

    return ResNetHooks(
        after_conv=after_conv,
        conv_expansion=stride**dims,
        at_input=lambda _: input_noise(sigma, input_std),
    )


def noise_hooks(sigma: float, input_std: tuple[float, ...] | None = None) -> ResNetHooks:
    """Training noise after every convolution and on the input (the paper's NT(sigma))."""
    return ResNetHooks(
        after_conv=lambda _: GaussianNoise(sigma),
        at_input=lambda _: input_noise(sigma, input_std),
    )


def _kap_builder(depth: int) -> Builder:
    def build(
        num_classes: int,
        in_channels: int,
        *,
        width: float = 1.0,
        kernel_size: int = 3,
        stride: int = 1,
        dims: Literal[1, 2] = 2,
        sigma: float = 0.1,
        input_std: tuple[float, ...] | None = None,
    ) -> nn.Module:
        hooks = kap_hooks(kernel_size, stride, dims, sigma, input_std)
        return cifar_resnet(depth, width, num_classes, in_channels, hooks)

    build.__name__ = f"kap_resnet{depth}"
    return build


def _nt_builder(depth: int) -> Builder:
    def build(
        num_classes: int,
        in_channels: int,
        *,
        width: float = 1.0,
        sigma: float = 0.1,
        input_std: tuple[float, ...] | None = None,
    ) -> nn.Module:
        return cifar_resnet(depth, width, num_classes, in_channels, noise_hooks(sigma, input_std))

    build.__name__ = f"nt_resnet{depth}"
    return build


for _depth in ARCHITECTURES:
    register_model(
        f"kap_resnet{_depth}",
        f"ResNet-{_depth} + kernel average pooling after every conv, train-time noise sigma",
    )(_kap_builder(_depth))
    register_model(
        f"nt_resnet{_depth}",
        f"ResNet-{_depth} trained with Gaussian noise on input + after every conv (KAP baseline)",
    )(_nt_builder(_depth))
