"""Zoo layers against hand computations: KAP (brute-force loops), Blur kernels, Prob bounds,
train-only noise, MC dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.errors import BenchmarkError
from models.layers import (
    Blur,
    GaussianNoise,
    KernelAvgPool,
    MCDropout,
    Prob,
    Smooth,
    kap_sheet,
)
from models.layers.smoothing import blur_kernel


def brute_force_kap(
    x: torch.Tensor, k: int, s: int, sheet: tuple[int, int], dims: int
) -> torch.Tensor:
    """Eq. 2 / Alg. 1 by explicit loops: mean over in-range neighbours on the channel sheet."""
    rows, cols = sheet
    p = (k - 1) // 2
    row_window = (lambda a: range(a * s - p, a * s + p + 1)) if dims == 2 else (lambda a: [a])
    out_rows = (rows + 2 * p - k) // s + 1 if dims == 2 else rows
    out_cols = (cols + 2 * p - k) // s + 1
    outputs = []
    for a in range(out_rows):
        for b in range(out_cols):
            members = [
                r * cols + c
                for r in row_window(a)
                for c in range(b * s - p, b * s + p + 1)
                if 0 <= r < rows and 0 <= c < cols
            ]
            outputs.append(sum(x[:, m] for m in members) / len(members))
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize(("dims", "channels"), [(1, 7), (1, 12), (2, 16), (2, 12), (2, 7), (2, 36)])
def test_kap_equals_brute_force_loop(kernel_size, stride, dims, channels):
    torch.manual_seed(kernel_size * 100 + stride * 10 + channels)
    x = torch.randn(2, channels, 3, 4, dtype=torch.float64)
    layer = KernelAvgPool(channels, kernel_size, stride, dims)
    sheet = (1, channels) if dims == 1 else kap_sheet(channels)
    expected = brute_force_kap(x, kernel_size, stride, sheet, dims)
    out = layer(x)
    assert out.shape == expected.shape
    assert layer.out_channels == expected.shape[1]
    assert torch.allclose(out, expected, atol=1e-12)


def test_kap_edges_average_in_range_neighbours_only():
    x = torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1)
    out = KernelAvgPool(3, kernel_size=3, stride=1, dims=1)(x).flatten()
    assert torch.allclose(out, torch.tensor([1.5, 7 / 3, 3.0]))  # not (0+1+2)/3 at the edge
    sheet = torch.arange(4.0).view(1, 4, 1, 1)  # 2 x 2 sheet: every window covers all four
    assert torch.allclose(KernelAvgPool(4, 3, 1, 2)(sheet).flatten(), torch.full((4,), 1.5))


def test_kap_sheet_is_most_nearly_square_factorisation():
    assert kap_sheet(64) == (8, 8)
    assert kap_sheet(128) == (8, 16)
    assert kap_sheet(512) == (16, 32)
    assert kap_sheet(7) == (1, 7)
    prime = torch.randn(2, 7, 2, 2)  # 1 x 7 sheet: 2-D KAP reduces to 1-D KAP
    assert torch.allclose(KernelAvgPool(7, 3, 1, 2)(prime), KernelAvgPool(7, 3, 1, 1)(prime))


def test_kap_rejects_bad_arguments_with_one_line_errors():
    for kwargs in ({"kernel_size": 2}, {"stride": 0}, {"sheet": (3, 3)}):
        with pytest.raises(BenchmarkError) as info:
            KernelAvgPool(8, **{"kernel_size": 3, **kwargs})
        assert "\n" not in str(info.value)


def test_blur_kernels_sum_to_one_and_match_hand_computation():
    for size in (1, 2, 3, 5):
        assert blur_kernel(size).sum().item() == pytest.approx(1.0, abs=1e-7)
    assert torch.equal(blur_kernel(1), torch.ones(1, 1))
    assert torch.allclose(blur_kernel(2), torch.full((2, 2), 0.25))
    hand3 = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    assert torch.allclose(blur_kernel(3), hand3)
    assert blur_kernel(5)[2, 2].item() == pytest.approx(36 / 256)
    assert blur_kernel(5)[0, 1].item() == pytest.approx(4 / 256)
    with pytest.raises(BenchmarkError):
        blur_kernel(4)


def test_blur_applies_the_kernel_depthwise():
    delta = torch.zeros(1, 2, 5, 5)
    delta[0, 0, 2, 2] = 1.0
    out = Blur(3)(delta)
    assert out.shape == delta.shape
    assert torch.allclose(out[0, 0, 1:4, 1:4], blur_kernel(3))  # symmetric kernel
    assert torch.equal(out[0, 1], torch.zeros(5, 5))  # channels are not mixed


def test_box_blur_is_the_reference_avgpool_and_grows_by_one():
    x = torch.randn(2, 3, 6, 7)
    reference = nn.AvgPool2d(kernel_size=2, stride=1, padding=1)(x)
    out = Blur(2)(x)
    assert out.shape == (2, 3, 7, 8)
    assert torch.allclose(out, reference, atol=1e-6)
    assert Blur(2, padding="same")(x).shape == x.shape
    assert torch.equal(Blur(1)(x), x)


def test_prob_is_bounded_and_relu_like_near_zero():
    z = 100 * torch.randn(10_000)
    for tau in (1.0, 10.0):
        p = Prob(tau)(z)
        assert p.min() >= 0 and p.max() <= tau
        assert p.max() > 0.99 * tau  # the bound is reached, not a smaller one
    small = torch.linspace(-0.05, 0.05, 11)
    assert torch.allclose(Prob(10.0)(small), torch.relu(small), atol=1e-5)
    assert Prob(kind="relu6")(z).max() == 6.0
    assert torch.allclose(Prob(5.0, "scale")(z), torch.relu(z / 5))
    smooth = Smooth()(torch.randn(1, 2, 4, 4))
    assert smooth.shape == (1, 2, 5, 5) and smooth.min() >= 0 and smooth.max() <= 10


def test_noise_only_in_training_mode_and_in_pixel_units():
    x = torch.zeros(4000, 2, 2, 2)
    noise = GaussianNoise(0.1, scale=[1 / 0.5, 1 / 0.25])
    noise.train()
    noisy = noise(x)
    assert not torch.equal(noisy, x)
    std = noisy.transpose(0, 1).reshape(2, -1).std(dim=1)
    assert torch.allclose(std, torch.tensor([0.2, 0.4]), rtol=0.05)
    noise.eval()
    assert torch.equal(noise(x), x)
    assert torch.equal(GaussianNoise(0.0).train()(x), x)


def test_mc_dropout_is_stochastic_in_eval_mode_and_its_average_converges():
    torch.manual_seed(0)
    layer = MCDropout(0.3).eval()
    x = torch.ones(1, 5000)
    a, b = layer(x), layer(x)
    assert not torch.equal(a, b)
    assert (a == 0).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert a.mean().item() == pytest.approx(1.0, abs=0.05)  # inverted dropout keeps the mean

    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), MCDropout(0.3), nn.Linear(32, 4)).eval()
    inputs = torch.randn(16, 8)

    def mean_softmax(n: int) -> torch.Tensor:  # n independent passes, batched as n copies
        return net(inputs.repeat(n, 1)).softmax(1).view(n, *inputs.shape[:1], 4).mean(0)

    with torch.no_grad():
        variances = [
            torch.stack([mean_softmax(n) for _ in range(30)]).var(0).mean().item()
            for n in (1, 4, 16)
        ]
    assert variances[0] > variances[1] > variances[2] > 0
    assert variances[2] < variances[0] / 6  # ~1/N: 16x more passes, far less variance
