"""Spatial smoothing (Park & Kim, seeds/spatial-smoothing-blurs-behave-like-ensembles.txt).

``Smooth(z) = Blur(Prob(z))`` (Eq. 5): ``Prob`` turns each feature-map point into a bounded,
probability-like value and ``Blur`` averages neighbouring points -- an ensemble over space that
makes MC-dropout networks need far fewer passes (N = 2 with smoothing ~ N = 50 without).

- ``Prob`` (Eq. 6-7): ``ReLU(tau * tanh(z / tau))``, tau = 10 (App. B.1). App. B.1 / Table B.1
  also use ReLU6 and constant scaling ``ReLU(z / tau)`` as the upper-bounded function.
- ``Blur`` (Eq. 8): a fixed depthwise convolution with ``K = k k^T / ||k||_1^2`` for
  k in {(1), (1,1), (1,2,1), (1,4,6,4,1)}; |k| = 2 (a 2x2 box blur) is the paper's default.
  Padding follows the reference code (xxxnell/spatial-smoothing ``layers.blur``): for |k| = 2 it
  is ``AvgPool2d(2, stride=1, padding=1)``, i.e. zero padding of one pixel on every side with the
  zeros counted, so the feature map grows by one pixel per Smooth layer (SPECS); for the other
  kernels it zero-pads to the same size (``SamePad``, extra pixel right/bottom). ``padding=
  "same"`` keeps the size for |k| = 2 too (a deviation, offered for size-sensitive uses).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError

# Binomial rows: identity, box blur, and two approximated Gaussian blurs (App. B.2).
BLUR_KERNELS: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (1.0, 1.0),
    3: (1.0, 2.0, 1.0),
    5: (1.0, 4.0, 6.0, 4.0, 1.0),
}
BlurSize = Literal[1, 2, 3, 5]
ProbKind = Literal["tanh", "relu6", "scale"]
BlurPadding = Literal["reference", "same"]


class Prob(nn.Module):
    """Feature map -> [0, bound]: ``tanh``: ReLU(tau tanh(z/tau)) (bounded by tau, slope 1 at 0
    for any tau, which avoids tanh's vanishing gradient); ``relu6``: min(max(z, 0), 6);
    ``scale``: ReLU(z / tau) (not bounded above; the paper's "constant scaling")."""

    def __init__(self, tau: float = 10.0, kind: ProbKind = "tanh") -> None:
        super().__init__()
        if tau <= 0:
            raise BenchmarkError(f"Prob temperature tau must be > 0 (got {tau})")
        if kind not in ("tanh", "relu6", "scale"):
            raise BenchmarkError(f"Prob kind must be tanh, relu6 or scale (got {kind!r})")
        self.tau, self.kind = float(tau), kind

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "tanh":
            return F.relu(self.tau * torch.tanh(z / self.tau))
        if self.kind == "relu6":
            return F.relu6(z)
        return F.relu(z / self.tau)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, tau={self.tau}"


def blur_kernel(size: int) -> torch.Tensor:
    """The 2-D kernel ``k k^T / ||k||_1^2`` (Eq. 8) for |k| = ``size``; it sums to one."""
    if size not in BLUR_KERNELS:
        raise BenchmarkError(f"blur size must be one of {sorted(BLUR_KERNELS)} (got {size})")
    k = torch.tensor(BLUR_KERNELS[size], dtype=torch.float64)
    return (torch.outer(k, k) / k.sum() ** 2).float()


class Blur(nn.Module):
    """Depthwise convolution of every channel with the fixed ``blur_kernel(size)``."""

    kernel: torch.Tensor  # buffer

    def __init__(self, size: int = 2, padding: BlurPadding = "reference") -> None:
        super().__init__()
        if padding not in ("reference", "same"):
            raise BenchmarkError(f"blur padding must be 'reference' or 'same' (got {padding!r})")
        kernel = blur_kernel(size)
        # A fixed, derived constant: not a parameter, and not saved in checkpoints.
        self.register_buffer("kernel", kernel.view(1, 1, size, size), persistent=False)
        self.size, self.padding = size, padding
        before, after = (size - 1) // 2, size // 2
        if size == 2 and padding == "reference":
            before = after = 1  # AvgPool2d(2, stride=1, padding=1): output grows by one
        self._pad = (before, after, before, after)  # F.pad order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size == 1:
            return x
        channels = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, self.size, self.size)
        return F.conv2d(F.pad(x, self._pad), weight, groups=channels)

    def extra_repr(self) -> str:
        return f"kernel={BLUR_KERNELS[self.size]}, padding={self.padding}"


class Smooth(nn.Sequential):
    """``Blur o Prob`` (Eq. 5), the layer placed after each ResNet stage."""

    def __init__(
        self,
        tau: float = 10.0,
        prob: ProbKind = "tanh",
        blur: int = 2,
        padding: BlurPadding = "reference",
    ) -> None:
        super().__init__(Prob(tau, prob), Blur(blur, padding))
