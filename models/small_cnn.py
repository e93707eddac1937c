"""A small CNN for the offline default (8x8 digits) and fast tests; works for any image size."""

from __future__ import annotations

from torch import nn

from models.layers import scaled
from models.registry import register_model


@register_model("small_cnn", "3-conv CNN with global pooling; fast baseline for small images")
def small_cnn(num_classes: int, in_channels: int, *, width: float = 1.0) -> nn.Module:
    c1, c2, c3 = scaled(32, width), scaled(64, width), scaled(128, width)
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c3, num_classes),
    )
