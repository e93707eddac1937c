"""MC dropout: dropout that stays active in ``eval()`` mode (Gal & Ghahramani 2016).

Evaluation always runs the model in eval mode (SPECS model contract), which switches
``nn.Dropout`` off; a Bayesian network's prediction instead averages the softmax of several
stochastic passes. The spatial-smoothing reference calls ``F.dropout(x, p)`` whose default
``training=True`` keeps it on regardless of the mode; this module does the same explicitly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError


class MCDropout(nn.Module):
    """Inverted dropout with rate ``p`` in both train and eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise BenchmarkError(f"dropout rate must be in [0, 1) (got {p})")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True) if self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"
