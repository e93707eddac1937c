"""Perturbation sequences in the style of CIFAR-10-P (Hendrycks & Dietterich 2019), generated
for any image data set: each example becomes M + 1 frames that change a little from one
frame to the next, so a stable model keeps its prediction along the sequence.

- ``translate``: frame k is the image shifted by k pixels in one of the four axis directions
  (drawn per image), the uncovered border filled by reflection -- the shift sequences of the
  spatial-smoothing paper's consistency (its Table E.3 uses CIFAR-10-P translate).
- ``gaussian_noise``: frame k adds fresh N(0, sigma^2) noise to the image (CIFAR-10-P's noise
  sequences redraw the noise per frame at one strength), clipped to [0, 1].

These are our generators, not the official CIFAR-10-P files (which are not loaded): the
numbers are comparable across models of one suite, not to published CIFAR-10-P tables.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

SequenceKind = Literal["translate", "gaussian_noise"]
DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx) unit steps


def perturbation_sequence(
    x: torch.Tensor,
    kind: SequenceKind,
    frames: int,
    generator: torch.Generator,
    noise_std: float = 0.04,
) -> torch.Tensor:
    """Frames (frames, N, C, H, W) of the sequences of images ``x`` (N, C, H, W in [0, 1]);
    frame 0 is the image itself. Random choices come from ``generator`` only."""
    n = len(x)
    if kind == "translate":
        pad = frames - 1
        if pad >= min(x.shape[-2:]):
            raise ValueError(f"a shift of {pad} pixels needs images larger than {x.shape[-2:]}")
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        choice = torch.randint(len(DIRECTIONS), (n,), generator=generator)
        steps = torch.tensor(DIRECTIONS)[choice]  # (N, 2)
        height, width = x.shape[-2:]
        out = torch.empty((frames, *x.shape), dtype=x.dtype)
        for k in range(frames):
            for i in range(n):
                top = pad + int(steps[i, 0]) * k
                left = pad + int(steps[i, 1]) * k
                out[k, i] = padded[i, :, top : top + height, left : left + width]
        return out
    noise = torch.randn((frames, *x.shape), generator=generator, dtype=x.dtype)
    noise[0] = 0.0
    return (x.unsqueeze(0) + noise_std * noise).clamp(0.0, 1.0)
