"""Noise corruptions (make_cifar_c.py: gaussian_noise, shot_noise, impulse_noise,
speckle_noise). Pixel-wise, so they need no size scaling. All randomness comes from the
``numpy.random.Generator`` passed in, one draw per element as in the original."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.corruptions import params as P


def _normal(rng: np.random.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(tuple(like.shape), dtype=np.float32))


def gaussian_noise(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``clip(x + N(0, c^2))``."""
    c = P.GAUSSIAN_NOISE[severity - 1]
    return (x + c * _normal(rng, x)).clamp(0, 1)


def shot_noise(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``clip(poisson(x * c) / c)``: photon noise with ``c`` photons at full intensity."""
    c = P.SHOT_NOISE[severity - 1]
    counts = rng.poisson(x.double().numpy() * c)
    return (torch.from_numpy(counts).to(x.dtype) / c).clamp(0, 1)


def impulse_noise(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``skimage.util.random_noise(mode='s&p', amount=c)``: each value (per channel) is
    replaced with probability ``c`` by 0 or 1 with equal odds."""
    c = P.IMPULSE_NOISE[severity - 1]
    flipped = torch.from_numpy(rng.random(tuple(x.shape)) < c)
    salted = torch.from_numpy(rng.random(tuple(x.shape)) < 0.5)
    out = x.clone()
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return out


def speckle_noise(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``clip(x + x * N(0, c^2))``: multiplicative noise."""
    c = P.SPECKLE_NOISE[severity - 1]
    return (x + x * c * _normal(rng, x)).clamp(0, 1)
