"""CIFAR ResNets: ResNet-20 (He et al. 2016, 3 stages x 3 blocks, 16/32/64 channels) and the
CIFAR ResNet-18 (4 stages x 2 BasicBlocks, 64..512 channels, 3x3 stem, no max-pool) used by the
KAP, spatial-smoothing and FMFP papers.

Shortcuts that change shape use a 1x1 convolution + BatchNorm (He et al.'s option B), as in
the kuangliu/pytorch-cifar ResNet-18 the papers build on; ResNet-20 uses the same for
uniformity (the original ResNet-20 uses parameter-free zero padding, option A).
``width`` multiplies every channel count so CPU runs can use narrow networks.
"""

from __future__ import annotations

import torch
from torch import nn

from models.layers import scaled
from models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem, stages of BasicBlocks (first stage stride 1, then stride 2), GAP, linear head."""

    def __init__(
        self,
        stage_channels: list[int],
        blocks_per_stage: list[int],
        num_classes: int,
        in_channels: int,
    ) -> None:
        super().__init__()
        stem = stage_channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False),
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
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(out), 1))


@register_model("resnet20", "CIFAR ResNet-20 (3x3 blocks, 16/32/64 channels x width)")
def resnet20(num_classes: int, in_channels: int, *, width: float = 1.0) -> nn.Module:
    channels = [scaled(c, width) for c in (16, 32, 64)]
    return CifarResNet(channels, [3, 3, 3], num_classes, in_channels)


@register_model("resnet18", "CIFAR ResNet-18 (4 stages x 2 BasicBlocks, 64..512 x width)")
def resnet18(num_classes: int, in_channels: int, *, width: float = 1.0) -> nn.Module:
    channels = [scaled(c, width) for c in (64, 128, 256, 512)]
    return CifarResNet(channels, [2, 2, 2, 2], num_classes, in_channels)
