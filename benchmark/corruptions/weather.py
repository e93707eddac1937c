"""Weather corruptions (make_cifar_c.py: snow, frost, fog, brightness, spatter).

Two of them depend on things we do not ship and are reimplemented (see README, "Corruption
robustness"):

* ``frost`` blends the image with crops of six frost *photographs*; we blend with a
  procedurally generated, seeded frost texture instead (:func:`frost_texture`). Same blend
  weights, different texture statistics: numbers are not comparable with CIFAR-10-C frost.
* ``spatter`` (water, severities 1-3) uses OpenCV's Canny, distance transform and histogram
  equalization; :func:`_canny`, SciPy's exact Euclidean distance transform and
  :func:`_equalize_hist` stand in for them (the 5x5 chamfer distance of OpenCV differs from
  the exact one by a few percent).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from benchmark.corruptions import kernels
from benchmark.corruptions import params as P
from benchmark.corruptions.color import hsv_to_rgb, on_rgb, rgb_to_gray, rgb_to_hsv


def plasma_fractal(n: int, mapsize: int, wibbledecay: float, rng: np.random.Generator):
    """``plasma_fractal`` of make_cifar_c.py (diamond-square height map in [0, 1]) for ``n``
    maps at once: (n, mapsize, mapsize), float64. Draw order and arithmetic follow the
    original (one uniform draw for the squares and two for the diamonds per level)."""
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    maps = np.zeros((n, mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        # original: total / 4 + wibble * uniform(-wibble, wibble)
        return total / 4 + wibble * (wibble * rng.uniform(-1.0, 1.0, total.shape))

    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares = squares + np.roll(squares, -1, axis=2)
        maps[:, half::step, half::step] = wibbled_mean(squares)
        centres = maps[:, half::step, half::step]
        corners = maps[:, ::step, ::step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, ::step, half::step] = wibbled_mean(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half::step, ::step] = wibbled_mean(top)
        step //= 2
        wibble /= wibbledecay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


def _plasma(x: torch.Tensor, wibbledecay: float, rng: np.random.Generator) -> torch.Tensor:
    """Plasma maps covering (H, W): the next power of two >= max(H, W), cropped (the CIFAR
    original uses 32 and crops [:32, :32])."""
    n, _, h, w = x.shape
    mapsize = 1 << max(1, math.ceil(math.log2(max(h, w))))
    maps = plasma_fractal(n, mapsize, wibbledecay, rng)[:, :h, :w]
    return torch.from_numpy(np.ascontiguousarray(maps)).to(x.dtype)[:, None]


def fog(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``clip((x + c0 * plasma) * max(x) / (max(x) + c0))``, max over the whole image."""
    weight, decay = P.FOG[severity - 1]
    max_val = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x + weight * _plasma(x, decay, rng)) * max_val / (max_val + weight)).clamp(0, 1)


def brightness(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """HSV value + c, clipped (``skimage.color.rgb2hsv`` / ``hsv2rgb``)."""
    c = P.BRIGHTNESS[severity - 1]

    def shift(rgb: torch.Tensor) -> torch.Tensor:
        hsv = rgb_to_hsv(rgb)
        hsv[:, 2] = (hsv[:, 2] + c).clamp(0, 1)
        return hsv_to_rgb(hsv)

    return on_rgb(shift, x).clamp(0, 1)


def frost_texture(x: torch.Tensor, rng: np.random.Generator, scale: float) -> torch.Tensor:
    """A seeded, procedural stand-in for make_cifar_c.py's frost photographs, (N, 3, H, W).

    Frost crops look like a bright, bluish-white layer with fine grain and short crystal
    streaks. Built as: a plasma fractal with slow decay (fine grain) plus sparse seeds smeared
    into streaks along random directions (the motion-blur kernel), tinted blue. Mean about 0.5.
    """
    n, _, h, w = x.shape
    grain = _plasma(x, 1.5, rng)
    seeds = torch.from_numpy(rng.random((n, 1, h, w)) < 0.08).to(x.dtype)
    angles = rng.uniform(0, 360, size=n)
    streaks = kernels.motion_blur(seeds, 4 * scale, 2 * scale, angles)
    streaks = streaks / streaks.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    texture = (0.25 + 0.45 * grain + 0.6 * streaks).clamp(0, 1)
    tint = torch.tensor([0.86, 0.93, 1.0], dtype=x.dtype).reshape(1, 3, 1, 1)
    return texture * tint


def frost(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``clip(c0 * x + c1 * frost)`` with a procedural frost texture (see module doc)."""
    image_weight, frost_weight = P.FROST[severity - 1]
    texture = frost_texture(x, rng, scale)
    return on_rgb(lambda rgb: (image_weight * rgb + frost_weight * texture).clamp(0, 1), x)


def snow(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """Snow layer: N(loc, scale) noise, ``clipped_zoom``, threshold, 8-bit, ImageMagick
    motion blur at an angle ~ U(-135, -45); image brightened toward ``1.5 gray + 0.5``;
    the layer and its 180-degree rotation added."""
    loc, spread, zoom, threshold, radius, sigma, blend = P.SNOW[severity - 1]
    n, _, h, w = x.shape
    layer = torch.from_numpy(rng.normal(loc, spread, size=(n, 1, h, w))).to(x.dtype)
    layer = kernels.clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # PIL 'L' image, astype(np.uint8)
    angles = rng.uniform(-135, -45, size=n)
    layer = kernels.motion_blur(layer, radius * scale, sigma * scale, angles)
    layer = torch.round(layer * 255) / 255  # ImageMagick's 8-bit PNG
    flakes = layer + layer.flip(-2, -1)

    def whiten(rgb: torch.Tensor) -> torch.Tensor:
        bright = torch.maximum(rgb, rgb_to_gray(rgb) * 1.5 + 0.5)
        return (blend * rgb + (1 - blend) * bright + flakes).clamp(0, 1)

    return on_rgb(whiten, x)


def _canny(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """OpenCV's ``Canny(image, low, high)`` (3x3 Sobel, L1 magnitude, 4-direction non-maximum
    suppression with OpenCV's tie rules, 8-connected hysteresis) for a (N, H, W) uint8 stack."""
    t = torch.from_numpy(image.astype(np.float64))[:, None]
    sobel = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    gx = kernels.correlate(t, sobel, "nearest")[:, 0].numpy()
    gy = kernels.correlate(t, sobel.T, "nearest")[:, 0].numpy()
    mag = np.abs(gx) + np.abs(gy)
    m = np.pad(mag, ((0, 0), (1, 1), (1, 1)))

    def nb(dr: int, dc: int) -> np.ndarray:
        h, w = mag.shape[1:]
        return m[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    ax, ay = np.abs(gx), np.abs(gy)
    tg22 = math.tan(math.pi / 8)
    horizontal = ay < ax * tg22
    vertical = ~horizontal & (ay > ax * (tg22 + 2))
    same_sign = (gx * gy) >= 0
    diag = np.where(
        same_sign,
        (mag > nb(-1, -1)) & (mag > nb(1, 1)),
        (mag > nb(-1, 1)) & (mag > nb(1, -1)),
    )
    peak = np.where(
        horizontal,
        (mag > nb(0, -1)) & (mag >= nb(0, 1)),
        np.where(vertical, (mag > nb(-1, 0)) & (mag >= nb(1, 0)), diag),
    )
    candidate = peak & (mag > low)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within an image, never across images
    labels, _ = ndimage.label(candidate, structure=structure)
    strong = np.unique(labels[candidate & (mag > high)])
    return np.isin(labels, strong[strong > 0])


def _equalize_hist(image: np.ndarray) -> np.ndarray:
    """``cv2.equalizeHist`` for each image of a (N, H, W) uint8 stack."""
    n = image.shape[0]
    flat = image.reshape(n, -1).astype(np.int64)
    total = flat.shape[1]
    hist = np.bincount((flat + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n)
    hist = hist.reshape(n, 256)
    first = np.argmax(hist > 0, axis=1)
    first_count = hist[np.arange(n), first]
    cumulative = np.cumsum(hist, axis=1) - first_count[:, None]
    denominator = np.maximum(total - first_count, 1)[:, None]
    lut = np.clip(np.rint(cumulative * 255.0 / denominator), 0, 255)
    lut = np.where(np.arange(256)[None] < first[:, None], 0, lut)
    constant = first_count == total
    lut[constant] = first[constant, None]
    return np.take_along_axis(lut, flat, axis=1).reshape(image.shape).astype(np.uint8)


def _water_weights(layer8: np.ndarray, scale: float) -> torch.Tensor:
    """The ``dist`` map of spatter's water branch, from the uint8 liquid layer (N, H, W)."""
    _, h, w = layer8.shape
    cap = 20.0 * scale
    edges = _canny(layer8, 50, 150)
    if edges.any():
        # One EDT over the stack; the huge spacing between images keeps them independent
        # (an image without edges gets distances above the cap, as OpenCV's would be).
        dist = ndimage.distance_transform_edt(~edges, sampling=(10.0 * (h + w + cap), 1, 1))
    else:
        dist = np.full(layer8.shape, cap)
    t = torch.from_numpy(np.minimum(dist, cap))[:, None]
    t = torch.floor(kernels.box_blur(t))  # astype(np.uint8)
    eq = torch.from_numpy(_equalize_hist(t[:, 0].numpy().astype(np.uint8)).astype(np.float64))
    emboss = np.array([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]])
    t = torch.round(kernels.correlate(eq[:, None], emboss, "mirror")).clamp(0, 255)  # CV_8U
    return torch.round(kernels.box_blur(t))  # cv2.blur on uint8 rounds


def spatter(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """Water drops (severity 1-3, pale turquoise) or mud (4-5, brown) from a thresholded,
    blurred Gaussian liquid layer, as in make_cifar_c.py (water: see module doc)."""
    loc, spread, sigma, threshold, intensity, mud = P.SPATTER[severity - 1]
    n, _, h, w = x.shape
    liquid = torch.from_numpy(rng.normal(loc, spread, size=(n, 1, h, w)))
    liquid = kernels.gaussian_filter(liquid, sigma * scale)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mud == 0:
        layer8 = torch.floor(liquid.clamp(0, 1) * 255)  # astype(np.uint8)
        weights = layer8 * _water_weights(layer8[:, 0].numpy().astype(np.uint8), scale)
        peak = weights.amax(dim=(1, 2, 3), keepdim=True)
        mask = torch.where(peak > 0, weights / peak.clamp_min(1e-12), 0.0) * intensity
        color = torch.tensor([175.0, 238.0, 238.0]).reshape(1, 3, 1, 1) / 255
        mask, color = mask.to(x.dtype), color.to(x.dtype)
        return on_rgb(lambda rgb: (rgb + mask * color).clamp(0, 1), x)
    mask = kernels.gaussian_filter((liquid > threshold).double(), intensity * scale)
    mask = torch.where(mask < 0.8, torch.zeros_like(mask), mask).to(x.dtype)
    color = (torch.tensor([63.0, 42.0, 20.0]).reshape(1, 3, 1, 1) / 255).to(x.dtype)
    return on_rgb(lambda rgb: (rgb * (1 - mask) + color * mask).clamp(0, 1), x)
