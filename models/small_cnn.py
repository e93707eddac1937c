"""A small CNN for the offline default (8x8 digits) and fast tests; works for any image size.

Two conv-BN-ReLU pairs, max-pool, two more, global average pooling, linear head. BatchNorm
makes it train in a handful of epochs, which keeps the quickstart and the tests short.
"""

from __future__ import annotations

from torch import nn

from models.layers import scaled
from models.registry import register_model


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


@register_model("small_cnn", "4-conv CNN with BatchNorm and global pooling; fast baseline")
def small_cnn(num_classes: int, in_channels: int, *, width: float = 1.0) -> nn.Module:
    c1, c2 = scaled(32, width), scaled(64, width)
    return nn.Sequential(
        *_conv_bn_relu(in_channels, c1),
        *_conv_bn_relu(c1, c1),
        nn.MaxPool2d(2),
        *_conv_bn_relu(c1, c2),
        *_conv_bn_relu(c2, c2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c2, num_classes),
    )
