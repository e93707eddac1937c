"""Small published networks from the verification and attack literature, with the layer names of
their public checkpoints so those load unchanged (strictly, after the usual unwrapping).

=============  ===========================================================================
key            network (source)
=============  ===========================================================================
``cnn_a``      CNN-A of the SDP-FO verification benchmark (Dathathri et al. 2020), as shipped
               by alpha-beta-CROWN: ``Sequential`` keys 0, 2, 5, 7
``conv_small`` ERAN's ConvSmall (Singh et al.), as shipped by alpha-beta-CROWN: padding 0
``oval_base``  the OVAL "base" CIFAR network (Lu & Kumar 2020), as shipped by alpha-beta-CROWN
``resnet2b``   alpha-beta-CROWN's ``cifar10_resnet`` resnet2b (``CResNet5``): no BatchNorm,
               biases everywhere, dense head
``resnet4b``   the same family's resnet4b (``CResNet7``)
``lenet5``     advertorch's MNIST LeNet-5 (``advertorch_examples``' ``LeNet5``)
=============  ===========================================================================

The first fully connected layer of every network is an ``nn.LazyLinear``: its input size is
the flattened feature map, which depends on the image size (2048 for CIFAR-10's 32x32 and
1568 for MNIST's 28x28 in CNN-A), and ``build_model`` materializes it with one dummy pass at
the dataset's image size. The layer then has the checkpoint's shape and loads like any other.

None of these networks normalizes inside; their checkpoints expect their own input
normalization (see ``shared/data/README.md`` next to the project), which a suite supplies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError
from models.registry import register_model


class SizedSequential(nn.Sequential):
    """``nn.Sequential`` (same key names) that refuses, in one line, images smaller than the
    network can take instead of failing deep inside a convolution."""

    def __init__(self, name: str, min_size: int, *layers: nn.Module) -> None:
        super().__init__(*layers)
        self.name = name
        self.min_size = min_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if min(height, width) < self.min_size:
            raise BenchmarkError(
                f"model '{self.name}' needs images of at least {self.min_size}x{self.min_size} "
                f"pixels, got {height}x{width}"
            )
        return super().forward(x)


def _two_conv_net(
    name: str, min_size: int, num_classes: int, channels: tuple[int, int, int], padding: int
) -> nn.Module:
    """Conv(4x4, stride 2) - ReLU - Conv(4x4, stride 2) - ReLU - Flatten - Linear(100) - ReLU -
    Linear: the shape shared by CNN-A, ConvSmall and OVAL base (keys 0, 2, 5, 7)."""
    c_in, c_mid, c_out = channels
    return SizedSequential(
        name,
        min_size,
        nn.Conv2d(c_in, c_mid, 4, stride=2, padding=padding),
        nn.ReLU(),
        nn.Conv2d(c_mid, c_out, 4, stride=2, padding=padding),
        nn.ReLU(),
        nn.Flatten(),
        nn.LazyLinear(100),
        nn.ReLU(),
        nn.Linear(100, num_classes),
    )


@register_model(
    "cnn_a",
    "CNN-A of the SDP-FO benchmark (alpha-beta-CROWN's sdp models): Conv(16,4,s2,p1), "
    "Conv(32,4,s2,p1), FC 100, FC; CIFAR-10 and MNIST checkpoints load",
)
def cnn_a(num_classes: int, in_channels: int) -> nn.Module:
    return _two_conv_net("cnn_a", 4, num_classes, (in_channels, 16, 32), padding=1)


@register_model(
    "conv_small",
    "ERAN ConvSmall (alpha-beta-CROWN's eran models): Conv(16,4,s2,p0), Conv(32,4,s2,p0), "
    "FC 100, FC; needs images of at least 10x10",
)
def conv_small(num_classes: int, in_channels: int) -> nn.Module:
    # (h - 4) // 2 + 1 >= 4 after the first convolution, so the second one fits
    return _two_conv_net("conv_small", 10, num_classes, (in_channels, 16, 32), padding=0)


@register_model(
    "oval_base",
    "OVAL base network (alpha-beta-CROWN's oval models): Conv(8,4,s2,p1), Conv(16,4,s2,p1), "
    "FC 100, FC",
)
def oval_base(num_classes: int, in_channels: int) -> nn.Module:
    return _two_conv_net("oval_base", 4, num_classes, (in_channels, 8, 16), padding=1)


class CrownBlock(nn.Module):
    """alpha-beta-CROWN's BasicBlock without BatchNorm: relu(conv2(relu(conv1 x)) + shortcut x),
    3x3 convolutions with biases; a 1x1 convolution (``shortcut.0``) where the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + self.shortcut(x))


class CrownResNet(nn.Module):
    """alpha-beta-CROWN's CResNet5 / CResNet7 with the dense head: relu(conv1) (3x3, stride 2),
    stages ``layer1, layer2, ...`` of ``blocks`` blocks (first stride 2), flatten,
    ``linear1`` (100) - ReLU - ``linear2``."""

    def __init__(
        self, in_channels: int, stem: int, stages: list[int], blocks: int, num_classes: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 2, 1)
        in_planes = stem
        for index, planes in enumerate(stages, start=1):
            layers = [CrownBlock(in_planes, planes, 2)]
            layers += [CrownBlock(planes, planes, 1) for _ in range(blocks - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*layers))
            in_planes = planes
        self.num_stages = len(stages)
        self.linear1 = nn.LazyLinear(100)
        self.linear2 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        for index in range(1, self.num_stages + 1):
            out = getattr(self, f"layer{index}")(out)
        return self.linear2(F.relu(self.linear1(torch.flatten(out, 1))))


@register_model(
    "resnet2b",
    "alpha-beta-CROWN cifar10_resnet resnet2b: conv 8 (s2), 2 blocks 8->16 (s2), 16->16, "
    "no BatchNorm, FC 100, FC",
)
def resnet2b(num_classes: int, in_channels: int) -> nn.Module:
    return CrownResNet(in_channels, 8, [16], 2, num_classes)


@register_model(
    "resnet4b",
    "alpha-beta-CROWN cifar10_resnet resnet4b: conv 16 (s2), 2 stages of 2 blocks "
    "(16->32 s2, 32->32, 32->32 s2, 32->32), no BatchNorm, FC 100, FC",
)
def resnet4b(num_classes: int, in_channels: int) -> nn.Module:
    return CrownResNet(in_channels, 16, [32, 32], 2, num_classes)


class LeNet5(nn.Module):
    """advertorch's MNIST LeNet-5: conv1 (32, 3x3, p1) - ReLU - max-pool 2 - conv2 (64) - ReLU -
    max-pool 2 - flatten - linear1 (200) - ReLU - linear2."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.linear1 = nn.LazyLinear(200)
        self.linear2 = nn.Linear(200, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(F.relu(self.conv1(x)), 2)
        out = F.max_pool2d(F.relu(self.conv2(out)), 2)
        return self.linear2(F.relu(self.linear1(torch.flatten(out, 1))))


@register_model(
    "lenet5",
    "advertorch's MNIST LeNet-5: conv 32, pool, conv 64, pool, FC 200, FC (inputs in [0, 1])",
)
def lenet5(num_classes: int, in_channels: int) -> nn.Module:
    return LeNet5(num_classes, in_channels)
