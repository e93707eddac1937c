"""Colour-space helpers: RGB <-> HSV (scikit-image's formulas) and the grayscale bridge.

make_cifar_c.py changes brightness and saturation in HSV with ``skimage.color.rgb2hsv`` /
``hsv2rgb``; these are the same formulas, batched in torch. Corruptions defined on RGB
(brightness, saturate, snow, frost, spatter) run on grayscale images by replicating the
channel to RGB and averaging the result back (:func:`on_rgb`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1); ties resolved as scikit-image does
    (blue over green over red)."""
    r, g, b = x.unbind(1)
    value = x.amax(1)
    delta = value - x.amin(1)
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    sat = torch.where(delta == 0, 0.0, delta / torch.where(value == 0, 1.0, value))
    hue = torch.zeros_like(value)
    hue = torch.where(r == value, (g - b) / safe, hue)
    hue = torch.where(g == value, 2.0 + (b - r) / safe, hue)
    hue = torch.where(b == value, 4.0 + (r - g) / safe, hue)
    hue = torch.remainder(hue / 6.0, 1.0)
    hue = torch.where(delta == 0, torch.zeros_like(hue), hue)
    return torch.stack([hue, sat, value], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv` (``skimage.color.hsv2rgb``)."""
    h, s, v = x.unbind(1)
    hi = torch.floor(h * 6)
    f = h * 6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    sector = hi.long().remainder(6)
    table = torch.stack(
        [
            torch.stack([v, t, p], 1),
            torch.stack([q, v, p], 1),
            torch.stack([p, v, t], 1),
            torch.stack([p, q, v], 1),
            torch.stack([t, p, v], 1),
            torch.stack([v, p, q], 1),
        ],
        0,
    )  # (6, N, 3, H, W)
    index = sector[None, :, None].expand(1, -1, 3, -1, -1)
    return table.gather(0, index)[0]


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """``cv2.COLOR_RGB2GRAY`` luma (0.299 R + 0.587 G + 0.114 B), keeps a channel dim."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def on_rgb(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply an RGB-only operation to RGB or grayscale images (gray: replicate, average back)."""
    channels = x.shape[1]
    if channels == 3:
        return fn(x)
    if channels == 1:
        return fn(x.expand(-1, 3, -1, -1).contiguous()).mean(1, keepdim=True)
    raise ValueError(f"corruption needs 1 or 3 channels, got {channels}")
