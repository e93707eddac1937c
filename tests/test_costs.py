"""The pass counter behind the per-job cost records (benchmarks/suite_costs.py)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.runner.costs import PassCounter


def test_counts_forward_and_gradient_images_separately() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.rand(5, 3, 2, 2)
    with PassCounter(model) as counter:
        with torch.no_grad():
            model(x)
            model(x[:2])
        xg = x.clone().requires_grad_(True)
        model(xg).sum().backward()
    assert counter.cost.forward_images == 7
    assert counter.cost.grad_images == 5
    assert counter.cost.seconds > 0
    model(x)  # the hook is gone after the block
    assert counter.cost.forward_images == 7 and counter.cost.grad_images == 5
