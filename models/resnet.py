"""CIFAR ResNets: ResNet-20 (He et al. 2016, 3 stages x 3 blocks, 16/32/64 channels) and the
CIFAR ResNet-18 (4 stages x 2 BasicBlocks, 64..512 channels, 3x3 stem, no max-pool) used by the
KAP, spatial-smoothing and FMFP papers.

Shortcuts that change shape use a 1x1 convolution + BatchNorm (He et al.'s option B), as in
the kuangliu/pytorch-cifar ResNet-18 the papers build on; ResNet-20 uses the same for
uniformity (the original ResNet-20 uses parameter-free zero padding, option A).
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
from torch import nn

from models.layers import scaled
from models.registry import register_model

Factory = Callable[[int], nn.Module]  # channel count at the insertion point -> layer
Depth = Literal[18, 20]
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


@register_model("resnet20", "CIFAR ResNet-20 (3x3 blocks, 16/32/64 channels x width)")
def resnet20(num_classes: int, in_channels: int, *, width: float = 1.0) -> nn.Module:
    return cifar_resnet(20, width, num_classes, in_channels)


@register_model("resnet18", "CIFAR ResNet-18 (4 stages x 2 BasicBlocks, 64..512 x width)")
def resnet18(num_classes: int, in_channels: int, *, width: float = 1.0) -> nn.Module:
    return cifar_resnet(18, width, num_classes, in_channels)
