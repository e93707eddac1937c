"""Shared, batched image operators for the corruption families (torch, NCHW float32).

Each corruption in ``make_cifar_c.py`` runs one image at a time through OpenCV, scikit-image,
SciPy or ImageMagick. Here the same operators are written once, for a whole batch:

* border handling by index arithmetic (:func:`border_index`), so padding may exceed the image
  size (tiny 8x8 images with large kernels) and every mode used by the originals is exact:
  ``mirror`` = OpenCV BORDER_REFLECT_101 / SciPy 'mirror', ``reflect`` = SciPy 'reflect'
  (half-sample symmetric), ``nearest`` = edge replication (SciPy 'nearest', ImageMagick edge);
* correlation with a fixed kernel (:func:`correlate`), as ``cv2.filter2D``;
* Gaussian kernels in SciPy's convention (:func:`gaussian_kernel1d`: radius
  ``int(truncate * sigma + 0.5)``) and OpenCV's (:func:`cv2_gaussian_kernel1d`);
* the anti-aliased disk of ``disk()`` (defocus blur), ``clipped_zoom`` as a linear map
  (:func:`zoom_matrix`), bilinear sampling (elastic transform) and ImageMagick's one-sided
  motion-blur line kernel (:func:`motion_blur`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

BorderMode = Literal["mirror", "reflect", "nearest"]


def border_index(index: torch.Tensor, n: int, mode: BorderMode) -> torch.Tensor:
    """Map integer indices (any range) into ``[0, n)`` with the given border rule."""
    if mode == "nearest" or n == 1:
        return index.clamp(0, n - 1)
    if mode == "mirror":  # ... 2 1 | 0 1 2 ... n-1 | n-2 ...
        period = 2 * (n - 1)
        i = index.remainder(period)
        return torch.where(i >= n, period - i, i)
    if mode == "reflect":  # ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
        period = 2 * n
        i = index.remainder(period)
        return torch.where(i >= n, period - 1 - i, i)
    raise ValueError(f"unknown border mode {mode!r}")


def pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: BorderMode):
    """Pad the last two dimensions of (N, C, H, W); unlike ``F.pad`` any width is allowed.

    Uses torch's padding kernels or slices where they apply (much faster than gathering) and
    index arithmetic otherwise (padding wider than the image)."""
    h, w = x.shape[-2:]
    fits = max(top, bottom) < h and max(left, right) < w
    if mode == "nearest" or (mode == "mirror" and fits):
        torch_mode = "replicate" if mode == "nearest" else "reflect"
        return F.pad(x, (left, right, top, bottom), mode=torch_mode)
    if mode == "reflect" and fits:
        x = torch.cat([x[..., :top, :].flip(-2), x, x[..., h - bottom :, :].flip(-2)], -2)
        return torch.cat([x[..., :left].flip(-1), x, x[..., w - right :].flip(-1)], -1)
    rows = border_index(torch.arange(-top, h + bottom), h, mode)
    cols = border_index(torch.arange(-left, w + right), w, mode)
    return x.index_select(-2, rows).index_select(-1, cols)


def exact_float64(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float64; 8-bit images (every value k/255 up to float32 rounding) become the
    exact ``k / 255.`` the originals compute from uint8 arrays."""
    scaled = x.double() * 255
    rounded = torch.round(scaled)
    if torch.all((scaled - rounded).abs() < 1e-3):
        return rounded / 255
    return x.double()


def correlate(x: torch.Tensor, kernel: torch.Tensor | np.ndarray, mode: BorderMode) -> torch.Tensor:
    """Correlate every channel of ``x`` (N, C, H, W) with a 2-D kernel, output the same size.

    Anchor at the kernel centre (odd sizes), like ``cv2.filter2D`` and ``scipy.ndimage.correlate``.
    All-zero outer rows/columns are dropped first: they contribute nothing and make the
    padding (and the convolution) smaller.
    """
    k = torch.as_tensor(np.asarray(kernel), dtype=x.dtype)
    while k.shape[0] > 1 and not k[0].any() and not k[-1].any():
        k = k[1:-1]
    while k.shape[1] > 1 and not k[:, 0].any() and not k[:, -1].any():
        k = k[:, 1:-1]
    kh, kw = k.shape
    h, w = x.shape[-2:]
    padded = pad(x, kh // 2, kh // 2, kw // 2, kw // 2, mode)
    # A sum of shifted copies: for the small kernels used here this is several times faster
    # on CPU than a one-channel conv2d over N*C images, and its summation order is fixed.
    out = torch.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            if k[i, j] != 0:
                out += k[i, j] * padded[..., i : i + h, j : j + w]
    return out


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """SciPy's ``gaussian_filter`` kernel (also scikit-image's ``gaussian``)."""
    radius = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or radius == 0:
        return np.ones(1)
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 / (sigma * sigma) * t**2)  # SciPy's exact expression (same rounding)
    return k / k.sum()


def cv2_gaussian_kernel1d(ksize: int, sigma: float) -> np.ndarray:
    """``cv2.getGaussianKernel(ksize, sigma)`` for sigma > 0."""
    t = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def separable(
    x: torch.Tensor, k_rows: np.ndarray, k_cols: np.ndarray, mode: BorderMode
) -> torch.Tensor:
    """Filter the rows dimension with ``k_rows`` and the columns with ``k_cols``."""
    return correlate(correlate(x, k_rows[:, None], mode), k_cols[None, :], mode)


def gaussian_filter(
    x: torch.Tensor, sigma: float, mode: BorderMode = "nearest", truncate: float = 4.0
) -> torch.Tensor:
    """``skimage.filters.gaussian`` / ``scipy.ndimage.gaussian_filter`` over H and W only
    (``multichannel=True``); scikit-image's default border is 'nearest'."""
    k = gaussian_kernel1d(sigma, truncate)
    return separable(x, k, k, mode)


def box_blur(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """``cv2.blur(x, (size, size))``: mean filter, BORDER_REFLECT_101."""
    k = np.full(size, 1.0 / size)
    return separable(x, k, k, "mirror")


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """``disk()`` of make_cifar_c.py: a normalized aliased disk on a grid of at least 17x17,
    anti-aliased by ``cv2.GaussianBlur`` (3x3 up to radius 8, else 5x5; BORDER_REFLECT_101)."""
    grid: np.ndarray
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    aliased = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    aliased /= aliased.sum()
    g = cv2_gaussian_kernel1d(ksize, alias_blur)
    blurred = separable(torch.from_numpy(aliased)[None, None], g, g, "mirror")
    return blurred[0, 0].numpy()


def zoom_matrix(n: int, zoom: float) -> torch.Tensor:
    """The linear map of make_cifar_c.py's ``clipped_zoom`` along one axis of length ``n``.

    ``clipped_zoom`` crops the central ``ceil(n / zoom)`` pixels, enlarges them with
    ``scipy.ndimage.zoom(order=1)`` (output length ``round(ch * zoom)``, input coordinate
    ``o * (ch - 1) / (out - 1)``) and trims the centre back to ``n``. Returns ``Z`` (n x n)
    with ``zoomed = Z @ image`` along that axis.
    """
    ch = int(np.ceil(n / zoom))
    top = (n - ch) // 2
    out = round(ch * zoom)
    trim = (out - n) // 2
    matrix = torch.zeros(n, n, dtype=torch.float64)
    step = (ch - 1) / (out - 1) if out > 1 else 0.0
    for row in range(n):
        coord = (row + trim) * step
        low = min(math.floor(coord), ch - 1)
        frac = coord - low
        matrix[row, top + low] += 1.0 - frac
        if frac > 0 and low + 1 < ch:
            matrix[row, top + low + 1] += frac
    return matrix


def clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """Batched ``clipped_zoom`` of (N, C, H, W) images (H and W handled separately)."""
    rows = zoom_matrix(x.shape[-2], zoom).to(x.dtype)
    cols = zoom_matrix(x.shape[-1], zoom).to(x.dtype)
    return rows @ x @ cols.T


def bilinear_sample(
    x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: BorderMode
) -> torch.Tensor:
    """Sample (N, C, H, W) images at real coordinates ``rows``/``cols`` (N, H, W) with
    bilinear interpolation; neighbours outside the image follow ``mode`` (as
    ``scipy.ndimage.map_coordinates(order=1)`` and ``cv2.remap(INTER_LINEAR)``)."""
    n, c, h, w = x.shape
    r0, c0 = torch.floor(rows), torch.floor(cols)
    fr, fc = (rows - r0).to(x.dtype), (cols - c0).to(x.dtype)
    r0, c0 = r0.long(), c0.long()
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        ri = border_index(r0 + dr, h, mode)
        for dc, wc in ((0, 1 - fc), (1, fc)):
            ci = border_index(c0 + dc, w, mode)
            index = (ri * w + ci).reshape(n, 1, h * w).expand(n, c, h * w)
            out += flat.gather(2, index) * (wr * wc).reshape(n, 1, h * w)
    return out.reshape(n, c, h, w)


def shift_gather(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """``out[n, :, i, j] = x[n, :, i + dy[n], j + dx[n]]`` with edge replication, for
    per-image integer offsets ``dy``/``dx`` (N,)."""
    n, c, h, w = x.shape
    rows = (torch.arange(h)[None, :] + dy[:, None]).clamp(0, h - 1)  # (N, H)
    cols = (torch.arange(w)[None, :] + dx[:, None]).clamp(0, w - 1)  # (N, W)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)


def motion_blur(
    x: torch.Tensor, radius: float, sigma: float, angles_deg: np.ndarray
) -> torch.Tensor:
    """ImageMagick's ``MotionBlurImage(radius, sigma, angle)`` for per-image angles.

    ImageMagick uses ``width = 2 * ceil(radius) + 1`` taps with weights
    ``exp(-i^2 / (2 sigma^2))`` (i = 0 .. width-1, normalized): a *one-sided* half-Gaussian
    along the angle, tap i at the integer offset ``(round(i cos a), round(i sin a))`` in
    (x, y), edge pixels replicated. That is what is computed here, one gather per tap; what
    is not reproduced is ImageMagick's 16-bit quantum arithmetic and PNG round trip.
    """
    width = 2 * math.ceil(radius) + 1 if radius > 0 else 1
    taps = np.arange(width, dtype=np.float64)
    weights = np.exp(-(taps**2) / (2.0 * max(sigma, 1e-12) ** 2))
    weights /= weights.sum()
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    out = torch.zeros_like(x)
    for i, weight in zip(taps, weights, strict=True):
        if weight < 1e-12:
            continue
        # ImageMagick: offset = ceil(i * cos|sin - 0.5), i.e. round half down
        dx = torch.from_numpy(np.ceil(i * np.cos(angles) - 0.5).astype(np.int64))
        dy = torch.from_numpy(np.ceil(i * np.sin(angles) - 0.5).astype(np.int64))
        out += float(weight) * shift_gather(x, dy, dx)
    return out
