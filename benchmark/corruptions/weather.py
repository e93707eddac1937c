"""Weather corruptions (make_cifar_c.py: snow, frost, fog, brightness, spatter).

* ``frost`` blends the image with a random crop of one of the frost photographs of
  make_cifar_c.py. The photographs are package data of ``imagecorruptions==1.1.2`` (installed
  with ``--no-deps``, located with :func:`importlib.util.find_spec` and never imported: its
  code does not run on NumPy 2 / current scikit-image); they are decoded with Pillow and
  resized by :func:`cv2_resize_linear`, a NumPy transcription of ``cv2.resize(...,
  INTER_LINEAR)`` for uint8 images, instead of OpenCV.
* ``spatter`` (water, severities 1-3) uses OpenCV's Canny, distance transform and histogram
  equalization; :func:`_canny`, SciPy's exact Euclidean distance transform and
  :func:`_equalize_hist` stand in for them (the 5x5 chamfer distance of OpenCV differs from
  the exact one by a few percent).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from benchmark.corruptions import kernels
from benchmark.corruptions import params as P
from benchmark.corruptions.color import hsv_to_rgb, on_rgb, rgb_to_gray, rgb_to_hsv
from benchmark.errors import BenchmarkError


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


FROST_PACKAGE = "imagecorruptions"  # pinned 1.1.2 in requirements.lock; data only
_FROST_MISSING = (
    "the frost corruption needs the frost photographs shipped by imagecorruptions==1.1.2: "
    "install it with `pip install --no-deps imagecorruptions==1.1.2` (--no-deps: its "
    "dependencies would pull OpenCV and scikit-image; only its data files are used)"
)


def frost_folder() -> Path:
    """The ``frost/`` folder of the installed ``imagecorruptions`` package, found without
    importing the package (``find_spec`` of a top-level package does not run its
    ``__init__``, which fails on NumPy 2)."""
    spec = importlib.util.find_spec(FROST_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "frost"
        if all((folder / name).is_file() for name in P.FROST_FILES):
            return folder
    raise BenchmarkError(_FROST_MISSING)


@functools.cache
def frost_images() -> tuple[np.ndarray, ...]:
    """The six frost photographs as read-only RGB uint8 arrays (H, W, 3), in the order of
    ``P.FROST_FILES``. ``cv2.imread`` gives BGR and make_cifar_c.py flips the crop back with
    ``[..., [2, 1, 0]]``: the net effect is RGB. The PNGs are RGBA with an opaque alpha
    channel, dropped (as ``cv2.imread`` does). Pillow's decoding equals ``cv2.imread``'s
    (measured with opencv-python-headless 4.10.0 and 5.1.0: no value differs in any of the
    six, JPEGs included)."""
    folder = frost_folder()
    images = []
    for name in P.FROST_FILES:
        with Image.open(folder / name) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
        array.setflags(write=False)
        images.append(array)
    return tuple(images)


def _linear_taps(
    src: int, dst: int, inv_scale: float, clamp_weights: bool
) -> tuple[np.ndarray, np.ndarray]:
    """First source index and 11-bit fixed-point weights (summing to 2048) per output index,
    as OpenCV's ``resize`` computes them for INTER_LINEAR: half-pixel centres, the position
    rounded to float32. Horizontally (``clamp_weights``) a tap outside the image becomes
    weight (2048, 0) on the edge pixel; vertically OpenCV keeps the weights and clamps the
    row indices instead (which rounds differently in the fixed-point vertical pass)."""
    scale = 1.0 / inv_scale
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    index = np.floor(pos).astype(np.int64)
    frac = (pos - index.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        frac[(index < 0) | (index >= src - 1)] = 0
        index = np.clip(index, 0, src - 1)
    w0 = np.rint((np.float32(1) - frac) * np.float32(2048)).astype(np.int64)
    w1 = np.rint(frac * np.float32(2048)).astype(np.int64)
    return index, np.stack([w0, w1], axis=1)


def _cv2_half_area(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """OpenCV turns an exact 2x INTER_LINEAR reduction into its fast INTER_AREA: 2x2 sums
    ``(s + 2) >> 2``; an edge cell past an odd border averages the pixels it has, in float32,
    rounded half to even."""
    h, w = image.shape[:2]
    padded = np.zeros((2 * out_h, 2 * out_w, image.shape[2]), dtype=np.int64)
    padded[: min(h, 2 * out_h), : min(w, 2 * out_w)] = image[: 2 * out_h, : 2 * out_w]
    total = padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]
    rows = np.minimum(h - 2 * np.arange(out_h), 2)
    cols = np.minimum(w - 2 * np.arange(out_w), 2)
    count = (rows[:, None] * cols[None, :])[..., None]
    edge = np.rint(total.astype(np.float32) / count.astype(np.float32)).astype(np.int64)
    return np.where(count == 4, (total + 2) >> 2, edge).astype(np.uint8)


def cv2_resize_linear(image: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """``cv2.resize(image, (0, 0), fx=fx, fy=fy)`` (INTER_LINEAR) for a uint8 (H, W, C) image.

    Output size ``round(W * fx) x round(H * fy)``; sampling at half-pixel centres with
    OpenCV's 11-bit fixed-point weights, a horizontal pass into int32 and the vertical pass's
    shifts and rounding. No antialiasing when reducing (unlike Pillow's BILINEAR), as in
    OpenCV; an exact 2x reduction switches to INTER_AREA, as OpenCV's does. Measured against
    opencv-python-headless 4.10.0 and 5.1.0: bit-identical on the six frost photographs at
    17 factors from 0.05 to 1.4 and on 397 random uint8 images (2-120 px, random fx, fy in
    0.03-3), 0 of 9.6 million values differing (tests/test_corruptions.py repeats the check
    where cv2 is installed). For fx = fy = 0.2 (CIFAR) every sample falls exactly on source
    pixel ``5 i + 2``: the resize is a subsampling.
    """
    h, w = image.shape[:2]
    out_w, out_h = round(w * fx), round(h * fy)  # saturate_cast<int>: half to even
    if (out_h, out_w) == (h, w):
        return image.copy()
    eps = float(np.finfo(np.float64).eps)  # OpenCV's is_area_fast test (DBL_EPSILON)
    if abs(1 / fx - 2) < eps and abs(1 / fy - 2) < eps:
        return _cv2_half_area(image, out_h, out_w)
    xi, xw = _linear_taps(w, out_w, fx, clamp_weights=True)
    yi, yw = _linear_taps(h, out_h, fy, clamp_weights=False)
    src = image.astype(np.int64)
    x_next = np.minimum(xi + 1, w - 1)
    rows = src[:, xi] * xw[:, 0, None] + src[:, x_next] * xw[:, 1, None]  # (H, out_w, C)
    y0, y1 = np.clip(yi, 0, h - 1), np.clip(yi + 1, 0, h - 1)
    top = (yw[:, 0, None, None] * (rows[y0] >> 4)) >> 16
    bottom = (yw[:, 1, None, None] * (rows[y1] >> 4)) >> 16
    return ((top + bottom + 2) >> 2).clip(0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=32)
def _resized_frost(index: int, fx: float, fy: float) -> np.ndarray:
    resized = cv2_resize_linear(frost_images()[index], fx, fy)
    resized.setflags(write=False)
    return resized


def _frost_layer(index: int, h: int, w: int, scale: float) -> np.ndarray:
    """Frost photograph ``index`` resized by ``0.2 * scale`` (CIFAR: 0.2), enlarged where
    needed so that it is at least one pixel taller and wider than the (h, w) image (only
    for images far from square: the smallest photograph is 1.78 times as wide as tall)."""
    fh, fw = frost_images()[index].shape[:2]
    factor = P.FROST_RESIZE * scale
    fx = factor if round(fw * factor) > w else (w + 1.5) / fw
    fy = factor if round(fh * factor) > h else (h + 1.5) / fh
    if fx != factor or fy != factor:
        fx = fy = max(fx, fy)  # keep the aspect ratio
    return _resized_frost(index, fx, fy)


def frost_crops(x: torch.Tensor, rng: np.random.Generator, scale: float) -> torch.Tensor:
    """One random crop of a random frost photograph per image, (N, 3, H, W) in [0, 1].

    make_cifar_c.py per image: ``idx = randint(5)``; resize photograph ``idx`` by 0.2;
    ``x_start = randint(0, rows - 32)``, ``y_start = randint(0, cols - 32)`` (upper bounds
    exclusive, so the last row and column offsets never occur); crop 32 x 32. Drawn here for
    the whole batch: all N indices, then all row offsets, then all column offsets. Like the
    original, ``randint(5)`` never picks the sixth photograph (frost6.jpg).
    """
    n, _, h, w = x.shape
    choice = rng.integers(0, P.FROST_CHOICES, size=n)
    layers = [_frost_layer(k, h, w, scale) for k in range(P.FROST_CHOICES)]
    rows = np.array([layer.shape[0] for layer in layers])[choice]
    cols = np.array([layer.shape[1] for layer in layers])[choice]
    x_start = rng.integers(0, rows - h)
    y_start = rng.integers(0, cols - w)
    crops = np.empty((n, h, w, 3), dtype=np.uint8)
    for k, layer in enumerate(layers):
        sel = np.flatnonzero(choice == k)
        if sel.size:
            r = x_start[sel, None] + np.arange(h)
            c = y_start[sel, None] + np.arange(w)
            crops[sel] = layer[r[:, :, None], c[:, None, :]]
    return torch.from_numpy(crops).permute(0, 3, 1, 2).to(x.dtype) / 255


def frost(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``clip(c0 * x + c1 * frost)`` with a crop of a frost photograph (see module doc)."""
    image_weight, frost_weight = P.FROST[severity - 1]
    texture = frost_crops(x, rng, scale)
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
