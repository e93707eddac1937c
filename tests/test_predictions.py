"""Batched prediction: out-of-memory batches are retried smaller with the same results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.evaluations.predictions import predict_probs


class RunsOutOfMemory(nn.Module):
    """A linear classifier that raises the allocator's error on batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(12, 5)
        self.limit = limit
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.linear(x.flatten(1))


def test_out_of_memory_batches_are_halved_and_give_the_same_probabilities():
    x = torch.rand(50, 3, 2, 2)
    model = RunsOutOfMemory(limit=12)
    probs = predict_probs(model, x, batch_size=64, device=torch.device("cpu"))
    reference = torch.softmax(model.linear(x.flatten(1)).double(), 1).detach().numpy()
    np.testing.assert_allclose(probs, reference, rtol=1e-12)
    # 64 and 32 and 16 fail once each; then 8 for every remaining batch (kept, not re-probed)
    assert model.sizes[:3] == [50, 32, 16] and set(model.sizes[3:]) == {8, 2}
    assert sum(model.sizes[3:]) == 50


def test_out_of_memory_at_one_example_is_a_one_line_error():
    with pytest.raises(BenchmarkError, match="out of cpu memory with a batch of one example"):
        predict_probs(RunsOutOfMemory(limit=0), torch.rand(4, 3, 2, 2), batch_size=4,
                      device=torch.device("cpu"))  # fmt: skip
