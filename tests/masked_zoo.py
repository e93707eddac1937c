"""A zoo of gradient-masking wrappers around a real trained model (Athalye et al. 2018;
Carlini et al. 2019): each keeps the model's predictions on clean inputs (up to its
preprocessing) while hiding, breaking or faking the gradient an attack follows.

Used by tests/test_masked_zoo.py: the harness must raise a flag on each masked wrapper and
none on the standard and the robust model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.attacks.bpda import straight_through


class Wrapper(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.randomized = False  # undeclared, whatever the wrapper does


class LogitScaling(Wrapper):
    """Logits x 1000: the softmax saturates, cross-entropy gradients underflow to zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1000.0 * self.net(x)


class Quantized(Wrapper):
    """Inputs rounded to 4 grey levels: a step function, zero gradient almost everywhere.
    Declares BPDA: the rounding's backward pass is the identity's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 3) / 3)

    def bpda_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(straight_through(torch.round(x * 3) / 3, x))


class JpegLike(Wrapper):
    """2x2 block averaging, then each block rounded to 8 levels (a lossy codec's coarse
    quantization of low frequencies)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(self.blocks(x) * 7) / 7)

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")

    def bpda_forward(self, x: torch.Tensor) -> torch.Tensor:
        """BPDA: the averaging is differentiable; only the rounding's backward is replaced."""
        blocks = self.blocks(x)
        return self.net(straight_through(torch.round(blocks * 7) / 7, blocks))


class Thermometer(Wrapper):
    """Thermometer encoding with 8 levels (Buckman et al. 2018), decoded back to one channel
    so the wrapped network still fits: each pixel becomes the fraction of thresholds it
    exceeds, a staircase with zero gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.decoded(x))

    def decoded(self, x: torch.Tensor) -> torch.Tensor:
        thresholds = torch.linspace(0.0625, 0.9375, 8, device=x.device)
        return (x.unsqueeze(-1) > thresholds).float().mean(-1)  # N C H W 8 -> N C H W

    def bpda_forward(self, x: torch.Tensor) -> torch.Tensor:
        """BPDA: the decoded staircase is close to the identity, so its gradient stands in."""
        return self.net(straight_through(self.decoded(x), x))


class UndeclaredNoise(Wrapper):
    """Gaussian input noise (std 0.1) at test time, not declared ``randomized``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + 0.1 * torch.randn_like(x))


class RandomResizePad(Wrapper):
    """Xie et al. 2018: resize by a random factor, pad at a random offset back to size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-1]
        new = int(torch.randint(size - 2, size + 1, (1,)))
        resized = F.interpolate(x, size=(new, new), mode="nearest")
        left, top = (int(v) for v in torch.randint(0, size - new + 1, (2,)))
        return self.net(F.pad(resized, (left, size - new - left, top, size - new - top)))


class DetachNoGraph(Wrapper):
    """The input is detached: the output has no autograd graph to the input at all."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.detach())


class DetachWithGraph(Wrapper):
    """The output is detached, then a zero-valued term keeps a graph: gradient exactly 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).detach() + 0.0 * x.flatten(1).sum(1, keepdim=True)


def _decoy(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Value 0, gradient ``weights``: a differentiable path that contributes nothing."""
    term = x.flatten(1) @ weights
    return term - term.detach()


class DetachDecoy(Wrapper):
    """``logits.detach() + decoy(x)``: the forward is the model's, the gradient is useless."""

    def __init__(self, net: nn.Module, n_inputs: int, n_classes: int) -> None:
        super().__init__(net)
        generator = torch.Generator().manual_seed(1)
        self.register_buffer("weights", torch.randn(n_inputs, n_classes, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).detach() + _decoy(x, self.weights)


class OneHot(Wrapper):
    """Hard labels: 10 x one-hot of the argmax (no gradient, no graph)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return 10.0 * F.one_hot(logits.argmax(1), logits.shape[1]).float()


class OneHotDecoy(DetachDecoy):
    """Hard labels plus a decoy gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        hard = 10.0 * F.one_hot(logits.argmax(1), logits.shape[1]).float()
        return hard + _decoy(x, self.weights)


def masked_zoo(net: nn.Module, n_inputs: int, n_classes: int) -> dict[str, nn.Module]:
    """Every masked wrapper of ``net``, by name, in eval mode."""
    makers: dict[str, Callable[[], nn.Module]] = {
        "logit_scaling": lambda: LogitScaling(net),
        "quantized": lambda: Quantized(net),
        "jpeg_like": lambda: JpegLike(net),
        "thermometer": lambda: Thermometer(net),
        "undeclared_noise": lambda: UndeclaredNoise(net),
        "random_resize_pad": lambda: RandomResizePad(net),
        "detach_no_graph": lambda: DetachNoGraph(net),
        "detach_with_graph": lambda: DetachWithGraph(net),
        "detach_decoy": lambda: DetachDecoy(net, n_inputs, n_classes),
        "one_hot": lambda: OneHot(net),
        "one_hot_decoy": lambda: OneHotDecoy(net, n_inputs, n_classes),
    }
    return {name: make().eval() for name, make in makers.items()}
