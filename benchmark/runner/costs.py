"""What a job cost: its wall time and the images it pushed through the model.

Counting images per pass lets a user judge an evaluation's overhead honestly: the ideal
cost of a job is its forward images at the model's forward throughput plus its gradient
images at the input-gradient throughput (``benchmarks/suite_costs.py`` measures both and
prints the ratio). Counts live beside the result, not in its metrics: they are facts about
one run (wall time differs between reruns), never part of the numbers being compared.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from types import TracebackType

import torch
from torch import nn


@dataclass
class JobCost:
    seconds: float = 0.0
    forward_images: int = 0  # images through forward passes without autograd
    grad_images: int = 0  # images through forward passes recording autograd (a backward follows)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class PassCounter:
    """Context manager counting the images each forward of ``model`` sees, split by whether
    autograd is recording, and timing the block."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.cost = JobCost()

    def _count(self, module: nn.Module, args: tuple[object, ...]) -> None:
        x = args[0] if args else None
        n = int(x.shape[0]) if isinstance(x, torch.Tensor) and x.ndim > 0 else 0
        if torch.is_grad_enabled():
            self.cost.grad_images += n
        else:
            self.cost.forward_images += n

    def __enter__(self) -> PassCounter:
        self._handle = self.model.register_forward_pre_hook(self._count)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cost.seconds = time.perf_counter() - self._started
        self._handle.remove()
