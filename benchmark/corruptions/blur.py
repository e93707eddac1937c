"""Blur corruptions (make_cifar_c.py: defocus_blur, glass_blur, motion_blur, zoom_blur,
gaussian_blur).

Lengths in the CIFAR constants are pixels of a 32 px image; ``scale`` (see
:mod:`benchmark.corruptions.registry`) converts them for other sizes. Zoom factors are
relative and need no scaling.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from benchmark.corruptions import kernels
from benchmark.corruptions import params as P


def gaussian_blur(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``skimage.filters.gaussian(x, sigma=c, multichannel=True)`` (border 'nearest',
    truncate 4)."""
    return kernels.gaussian_filter(x, P.GAUSSIAN_BLUR[severity - 1] * scale).clamp(0, 1)


def defocus_blur(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``cv2.filter2D(x, -1, disk(radius, alias_blur))`` per channel (BORDER_REFLECT_101)."""
    radius, alias_blur = P.DEFOCUS_BLUR[severity - 1]
    kernel = kernels.disk_kernel(radius * scale, alias_blur * scale)
    return kernels.correlate(x, kernel, "mirror").clamp(0, 1)


def glass_blur(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """Gaussian blur, local pixel shuffling, Gaussian blur again.

    make_cifar_c.py visits pixels (h, w) for h, w = 31 .. 2 (descending) and "swaps" each
    with (h + dy, w + dx), dx, dy ~ randint(-1, 1) i.e. in {-1, 0}. On an RGB array the tuple
    swap copies rather than swaps (``x[h, w]`` is a view that is overwritten first), so each
    visited pixel takes its neighbour's value; and because the neighbour lies up/left of a
    pixel visited in descending order, it still holds its value from before the pass. The
    pass is therefore exactly a parallel gather from the previous image, done here in one
    step per iteration. The intermediate image is truncated to uint8 as in the original.
    ``max_delta`` scales with the image (at least 1); for ``max_delta > 1`` the gather is
    our definition (the sequential original would then read already-moved pixels).
    """
    sigma, max_delta, iterations = P.GLASS_BLUR[severity - 1]
    sigma *= scale
    delta = max(1, round(max_delta * scale))
    n, c, h, w = x.shape
    # np.uint8(gaussian(x / 255.) * 255) truncates, so a last-ulp difference flips a level
    # (flat areas sit exactly on integers): this one blur is SciPy's own gaussian_filter,
    # run once over the whole float64 batch, bit-identical to scikit-image's per image.
    blurred = ndimage.gaussian_filter(
        kernels.exact_float64(x).numpy(), (0, 0, sigma, sigma), mode="nearest", truncate=4.0
    )
    y = torch.from_numpy(np.floor(np.clip(blurred, 0, 1) * 255) / 255).to(x.dtype)
    rows = torch.arange(delta + 1, h - delta + 1)
    cols = torch.arange(delta + 1, w - delta + 1)
    for _ in range(iterations):
        shifts = torch.from_numpy(rng.integers(-delta, delta, size=(2, n, len(rows), len(cols))))
        dx, dy = shifts[0], shifts[1]
        source = torch.arange(h * w).reshape(1, h, w).repeat(n, 1, 1)
        src_rows = rows[None, :, None] + dy
        src_cols = cols[None, None, :] + dx
        source[:, rows[:, None], cols[None, :]] = src_rows * w + src_cols
        index = source.reshape(n, 1, h * w).expand(n, c, h * w)
        y = y.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)
    return kernels.gaussian_filter(y, sigma).clamp(0, 1)


def motion_blur(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """ImageMagick ``motion_blur(radius, sigma, angle ~ U(-45, 45))``, reimplemented as the
    line kernel ImageMagick uses (see :func:`kernels.motion_blur`)."""
    radius, sigma = P.MOTION_BLUR[severity - 1]
    angles = rng.uniform(-45, 45, size=x.shape[0])
    return kernels.motion_blur(x, radius * scale, sigma * scale, angles).clamp(0, 1)


def zoom_blur(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """Mean of the image and its ``clipped_zoom`` by each factor in ``c``."""
    factors = P.ZOOM_BLUR[severity - 1]
    out = x.clone()
    for factor in factors:
        out += kernels.clipped_zoom(x, float(factor))
    return (out / (len(factors) + 1)).clamp(0, 1)
