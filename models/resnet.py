"""CIFAR ResNets: the ResNet-20/32/44/56/110 of He et al. 2016 (3 stages of (depth - 2) / 6
BasicBlocks, 16/32/64 channels) and the CIFAR ResNet-18 (4 stages x 2 BasicBlocks, 64..512
channels, 3x3 stem, no max-pool) used by the KAP, spatial-smoothing and FMFP papers.

Shortcuts that change shape come in He et al.'s two options, chosen by the ``shortcut``
parameter of resnet20..resnet110:

- ``"B"`` (the default, as before): a 1x1 convolution + BatchNorm, as in the
  kuangliu/pytorch-cifar ResNet-18 the papers build on. This is :class:`CifarResNet`, whose
  key names (``stem``, ``stages``, ``fc``) the KAP / smoothing variants and cached
  checkpoints rely on. ResNet-18 always uses it.
- ``"A"`` (the paper's): parameter-free; the input is subsampled ``x[:, :, ::2, ::2]`` and
  zero-padded with the new channels. This is :class:`HeResNet`, exactly
  akamaster/pytorch_resnet_cifar10's network with its key names (``conv1``, ``bn1``,
  ``layer1..3``, ``linear``), so that repository's checkpoints load unchanged.

``width`` multiplies every channel count so CPU runs can use narrow networks.

The papers' variants differ from the plain network only in layers inserted at fixed points, so
there is one network class and the variants pass :class:`ResNetHooks` (factories for those
layers): KAP after every convolution (models/kap_resnet.py), noise after every convolution,
Smooth after every stage and MC dropout between a block's convolutions
(models/smooth_resnet.py). Hooks without parameters add nothing to ``state_dict``, so plain
checkpoints keep the kuangliu key names and load into the noise/KAP/smoothing variants.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import scaled
from models.registry import register_model

Factory = Callable[[int], nn.Module]  # channel count at the insertion point -> layer
Depth = Literal[18, 20]
Shortcut = Literal["A", "B"]
# (stage channels at width 1, blocks per stage)
ARCHITECTURES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    18: ((64, 128, 256, 512), (2, 2, 2, 2)),
    20: ((16, 32, 64), (3, 3, 3)),
}


def identity_factory(_: int) -> nn.Module:
    return nn.Identity()


@dataclass(frozen=True)
class ResNetHooks:
    """Layers a variant inserts into the plain network (each factory gets a channel count).

    ``after_conv(c)`` follows every convolution (stem, block, shortcut) and must map
    ``c * conv_expansion`` channels to ``c``; ``between_convs(c)`` sits after a block's first
    conv-BN-ReLU; ``after_stage(c)`` follows each stage; ``at_input(in_channels)`` comes first.
    """

    after_conv: Factory = identity_factory
    conv_expansion: int = 1
    between_convs: Factory = identity_factory
    after_stage: Factory = identity_factory
    at_input: Factory = identity_factory


def _conv_unit(conv: nn.Module, hook: nn.Module, *rest: nn.Module) -> nn.Sequential:
    """``conv, hook, *rest`` with the plain network's key names: the layers are numbered as
    without the hook and the hook is named ``hook``, so a parameter-free hook (noise, KAP)
    leaves the ``state_dict`` keys unchanged and plain checkpoints load into variants."""
    named = [("0", conv), ("hook", hook)] + [(str(i + 1), m) for i, m in enumerate(rest)]
    return nn.Sequential(OrderedDict(named))


class BasicBlock(nn.Module):
    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, hooks: ResNetHooks | None = None
    ) -> None:
        super().__init__()
        hooks = hooks or ResNetHooks()
        wide = planes * hooks.conv_expansion
        self.conv1 = nn.Conv2d(in_planes, wide, 3, stride, 1, bias=False)
        self.post1 = hooks.after_conv(planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.mid = hooks.between_convs(planes)
        self.conv2 = nn.Conv2d(planes, wide, 3, 1, 1, bias=False)
        self.post2 = hooks.after_conv(planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _conv_unit(
                nn.Conv2d(in_planes, wide, 1, stride, bias=False),
                hooks.after_conv(planes),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.post1(self.conv1(x))))
        out = self.bn2(self.post2(self.conv2(self.mid(out))))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem, stages of BasicBlocks (first stage stride 1, then stride 2), GAP, linear head."""

    def __init__(
        self,
        stage_channels: list[int],
        blocks_per_stage: list[int],
        num_classes: int,
        in_channels: int,
        hooks: ResNetHooks | None = None,
    ) -> None:
        super().__init__()
        hooks = hooks or ResNetHooks()
        stem = stage_channels[0]
        self.input_layer = hooks.at_input(in_channels)
        self.stem = _conv_unit(
            nn.Conv2d(in_channels, stem * hooks.conv_expansion, 3, 1, 1, bias=False),
            hooks.after_conv(stem),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        )
        stages, in_planes = [], stem
        for index, (planes, blocks) in enumerate(
            zip(stage_channels, blocks_per_stage, strict=True)
        ):
            layers = []
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride, hooks))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.after_stages = nn.ModuleList(hooks.after_stage(c) for c in stage_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(self.input_layer(x))
        for stage, after in zip(self.stages, self.after_stages, strict=True):
            out = after(stage(out))
        return self.fc(torch.flatten(self.pool(out), 1))


def cifar_resnet(
    depth: int, width: float, num_classes: int, in_channels: int, hooks: ResNetHooks | None = None
) -> CifarResNet:
    """ResNet-``depth`` (18 or 20) with every stage's channels scaled by ``width``."""
    channels, blocks = ARCHITECTURES[depth]
    return CifarResNet(
        [scaled(c, width) for c in channels], list(blocks), num_classes, in_channels, hooks
    )


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A shortcut: ``x[:, :, ::stride, ::stride]`` with the missing channels
    added as zeros, half before and half after the input's (akamaster's
    ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`` when the channels
    double and ``planes`` is a multiple of 4; an odd difference puts the extra zero channel last).
    No parameters, so nothing in ``state_dict``."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        if planes < in_planes:
            raise ValueError(
                f"zero-padding shortcut cannot shrink {in_planes} to {planes} channels"
            )
        self.stride = stride
        self.before = (planes - in_planes) // 2
        self.after = planes - in_planes - self.before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))


class HeBasicBlock(nn.Module):
    """akamaster's BasicBlock with option A: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut x)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = ZeroPadShortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class HeResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2016 with option-A shortcuts, as akamaster/
    pytorch_resnet_cifar10 implements it (same modules, key names and initialization:
    Kaiming-normal fan-in weights for every convolution and the linear layer):
    conv1-bn1-relu, ``layer1..3`` of ``blocks`` BasicBlocks (strides 1, 2, 2), global average
    pooling, ``linear``."""

    def __init__(
        self, stage_channels: list[int], blocks: int, num_classes: int, in_channels: int
    ) -> None:
        super().__init__()
        first, second, third = stage_channels
        self.conv1 = nn.Conv2d(in_channels, first, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(first)
        self.layer1 = self._stage(first, first, blocks, 1)
        self.layer2 = self._stage(first, second, blocks, 2)
        self.layer3 = self._stage(second, third, blocks, 2)
        self.linear = nn.Linear(third, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [HeBasicBlock(in_planes, planes, stride)]
        layers += [HeBasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.shape[-2:])  # global average pooling, as akamaster's
        return self.linear(torch.flatten(out, 1))


HE_DEPTHS = (20, 32, 44, 56, 110)
HE_CHANNELS = (16, 32, 64)


def he_resnet(
    depth: int, width: float, shortcut: Shortcut, num_classes: int, in_channels: int
) -> nn.Module:
    """He et al.'s CIFAR ResNet-``depth`` (depth = 6n + 2: n BasicBlocks per stage), channels
    scaled by ``width``; ``shortcut`` "A" gives :class:`HeResNet`, "B" :class:`CifarResNet`."""
    if depth not in HE_DEPTHS:
        raise ValueError(f"depth must be one of {HE_DEPTHS}, got {depth}")
    if shortcut == "B" and depth in ARCHITECTURES:
        return cifar_resnet(depth, width, num_classes, in_channels)
    blocks = (depth - 2) // 6
    channels = [scaled(c, width) for c in HE_CHANNELS]
    if shortcut == "A":
        return HeResNet(channels, blocks, num_classes, in_channels)
    return CifarResNet(channels, [blocks] * 3, num_classes, in_channels)


def _he_description(depth: int) -> str:
    blocks = (depth - 2) // 6
    return (
        f"CIFAR ResNet-{depth} (He et al. 2016: 3 stages x {blocks} BasicBlocks, 16/32/64 "
        "channels x width); shortcut A = the paper's zero padding, key names of "
        "akamaster/pytorch_resnet_cifar10 (its checkpoints load), B = 1x1 conv + BN"
    )


# shortcut came after resnet20 (always "B" before): old suites keep their checkpoints and keys
@register_model("resnet20", _he_description(20), added_params={"shortcut": "B"})
def resnet20(
    num_classes: int, in_channels: int, *, width: float = 1.0, shortcut: Shortcut = "B"
) -> nn.Module:
    return he_resnet(20, width, shortcut, num_classes, in_channels)


def _he_builder(depth: int) -> Callable[..., nn.Module]:
    def build(
        num_classes: int, in_channels: int, *, width: float = 1.0, shortcut: Shortcut = "B"
    ) -> nn.Module:
        return he_resnet(depth, width, shortcut, num_classes, in_channels)

    build.__name__ = f"resnet{depth}"
    return build


for _depth in HE_DEPTHS[1:]:
    register_model(f"resnet{_depth}", _he_description(_depth))(_he_builder(_depth))


@register_model("resnet18", "CIFAR ResNet-18 (4 stages x 2 BasicBlocks, 64..512 x width)")
def resnet18(num_classes: int, in_channels: int, *, width: float = 1.0) -> nn.Module:
    return cifar_resnet(18, width, num_classes, in_channels)
