"""Kernel Average Pooling (KAP; Bashivan et al., seeds/kap-kernel-average-pooling.txt).

KAP is a mean filter along the *channel* ("kernel") dimension: each output channel is the
average of neighbouring channels at the same spatial position (Eq. 2). After a convolution
this equals convolving with locally averaged filters (Eq. 3), so neighbouring kernels are
pushed to form ensembles that compute the same feature -- the paper's source of robustness.

Two arrangements of the C channels:

- 1-D (Eq. 2): channels on a line, window K.
- 2-D (Eq. 10, Alg. 1, used in the paper's main experiments): channels on an N_r x N_c sheet
  (row-major, channel ``k`` at ``(k // N_c, k % N_c)``), K x K window. Alg. 1 writes the sheet as
  sqrt(C) x sqrt(C); App. A.1 defines it for any N_k = N_r x N_c. CIFAR ResNet-18 has 128 and
  512 channels, which are not squares, so we follow A.1: the sheet is the most nearly square
  factorisation N_r <= N_c (8 x 16 for 128, 16 x 32 for 512, exactly sqrt x sqrt for squares).
  A prime C gives a 1 x C sheet, where the padded rows carry no weight: 2-D KAP then reduces to
  1-D KAP. An explicit ``sheet`` can be passed instead.

Both forms zero-pad by (K-1)/2 with padding that does *not* count in the average
(count_include_pad=False, A.1 "with zero weight in computing the average"): edge channels are
averaged over their in-range neighbours only. K must be odd so that stride 1 keeps C channels.
A stride S > 1 maps a sheet of (N_r*S) x (N_c*S) channels to N_r x N_c (a line of C*S to C).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError


def kap_sheet(channels: int) -> tuple[int, int]:
    """The most nearly square (rows, cols) with rows * cols = channels and rows <= cols."""
    rows = math.isqrt(channels)
    while channels % rows:
        rows -= 1
    return rows, channels // rows


class KernelAvgPool(nn.Module):
    """Average over neighbouring channels; input and output are NCHW.

    Implemented as one ``avg_pool2d`` over the sheet axes of a permuted view of the input,
    (N, H*W, N_r, N_c); 1-D KAP is the 1 x C sheet with a 1 x K window. (``avg_pool3d`` would
    avoid the permutation but refuses sheets smaller than the window even when padded.)
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dims: Literal[1, 2] = 2,
        sheet: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise BenchmarkError(f"KAP kernel_size must be odd and >= 1 (got {kernel_size})")
        if stride < 1:
            raise BenchmarkError(f"KAP stride must be >= 1 (got {stride})")
        if dims not in (1, 2):
            raise BenchmarkError(f"KAP dims must be 1 or 2 (got {dims})")
        if sheet is None:
            sheet = (1, channels) if dims == 1 else kap_sheet(channels)
        if sheet[0] * sheet[1] != channels:
            raise BenchmarkError(f"KAP sheet {sheet} does not hold {channels} channels")
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.dims = dims
        self.sheet = sheet
        pad = (kernel_size - 1) // 2
        k_rows, s_rows, p_rows = (1, 1, 0) if dims == 1 else (kernel_size, stride, pad)
        self._window = (k_rows, kernel_size)
        self._stride = (s_rows, stride)
        self._padding = (p_rows, pad)
        out_rows = (sheet[0] + 2 * p_rows - k_rows) // s_rows + 1
        out_cols = (sheet[1] + 2 * pad - kernel_size) // stride + 1
        self.out_sheet = (out_rows, out_cols)
        self.out_channels = out_rows * out_cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(f"KernelAvgPool expects {self.channels} channels, got {c}")
        z = x.reshape(n, self.sheet[0], self.sheet[1], h * w).permute(0, 3, 1, 2)
        z = F.avg_pool2d(z, self._window, self._stride, self._padding, count_include_pad=False)
        return z.permute(0, 2, 3, 1).reshape(n, self.out_channels, h, w)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"dims={self.dims}, sheet={self.sheet}"
        )
