"""Additive Gaussian activation noise used only while training (KAP paper, Sec. 4.1).

The KAP paper trains with N(0, sigma^2) added to the input image and after each KAP (after each
convolution in the noise-trained baseline) and evaluates *without* noise ("the input and
activation noise were only used during model training"), so the model stays deterministic at
test time and is not flagged randomized.

:class:`InputNoise` is the input part. It is its own class so that a training recipe can see
that a model already carries input noise: the ``gaussian_noise`` recipe then adds none of its
own (models/training/noise.py), and the input gets std sigma once, not sqrt(2) sigma.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from benchmark.errors import BenchmarkError


class GaussianNoise(nn.Module):
    """``x + sigma * scale * eps`` with eps ~ N(0, I) in training mode; identity in eval mode.

    ``scale`` (one value per channel) expresses sigma in other units than those of ``x``: the
    backbone sees *normalized* input, so noise of std sigma on the [0, 1] image is
    ``sigma / std_c`` on channel c after normalization.
    """

    scale: torch.Tensor  # buffer

    def __init__(self, sigma: float, scale: Sequence[float] | None = None) -> None:
        super().__init__()
        if sigma < 0:
            raise BenchmarkError(f"noise sigma must be >= 0 (got {sigma})")
        self.sigma = float(sigma)
        per_channel = torch.ones(1) if scale is None else torch.tensor(list(scale))
        self.register_buffer("scale", per_channel.float().view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0:
            return x
        return x + self.sigma * self.scale * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class InputNoise(GaussianNoise):
    """N(0, sigma^2) on the [0, 1] image, applied to the *normalized* input the backbone sees.

    ``sigma`` is in pixel units (the units of the ``gaussian_noise`` recipe's ``sigma``);
    ``input_std`` is the normalization's per-channel std (None: the input is not normalized),
    so the noise added after normalization is ``sigma / std_c`` on channel c.
    """

    def __init__(self, sigma: float, input_std: Sequence[float] | None = None) -> None:
        super().__init__(sigma, None if input_std is None else [1.0 / s for s in input_std])
