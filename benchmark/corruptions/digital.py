"""Digital corruptions (make_cifar_c.py: contrast, elastic_transform, pixelate,
jpeg_compression, saturate)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from benchmark.corruptions import kernels
from benchmark.corruptions import params as P
from benchmark.corruptions.color import hsv_to_rgb, on_rgb, rgb_to_hsv

PIL_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point resampling precision (Resample.c)


def contrast(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """``clip((x - mean) * c + mean)``, mean per image and channel."""
    c = P.CONTRAST[severity - 1]
    means = x.mean(dim=(2, 3), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def saturate(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """HSV saturation ``s * a + b``, clipped (``skimage.color`` conversions)."""
    a, b = P.SATURATE[severity - 1]

    def change(rgb: torch.Tensor) -> torch.Tensor:
        hsv = rgb_to_hsv(rgb)
        hsv[:, 1] = (hsv[:, 1] * a + b).clamp(0, 1)
        return hsv_to_rgb(hsv)

    return on_rgb(change, x).clamp(0, 1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[0, 1] floats to uint8 values (rounded: exact for images that came from uint8)."""
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).numpy()


def _box_coefficients(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's BOX resampling weights (``precompute_coeffs`` + ``normalize_coeffs_8bpc``) as
    an (out_size, in_size) matrix of fixed-point integers."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = (np.arange(lo, hi) - center + 0.5) / filterscale
        weights = ((taps > -0.5) & (taps <= 0.5)).astype(np.float64)
        if weights.sum() > 0:
            weights /= weights.sum()
        matrix[out, lo:hi] = np.floor(0.5 + weights * (1 << PIL_PRECISION_BITS))
    return matrix


def _pil_fixed_point(values: torch.Tensor) -> torch.Tensor:
    """Pillow's rounding of a fixed-point sum back to 8 bits (exact in float64)."""
    half = float(1 << (PIL_PRECISION_BITS - 1))
    return torch.floor((values + half) / float(1 << PIL_PRECISION_BITS)).clamp(0, 255)


def pil_box_resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``PIL.Image.resize((width, height), BOX)`` for a batch of uint8-valued float64 images
    (N, C, H, W): horizontal pass then vertical pass, each rounded to 8 bits like Pillow."""
    _, _, h, w = images.shape
    out = images
    if width != w:
        out = _pil_fixed_point(out @ torch.from_numpy(_box_coefficients(w, width)).T)
    if height != h:
        out = _pil_fixed_point(torch.from_numpy(_box_coefficients(h, height)) @ out)
    return out


def pixelate(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """BOX downscale to ``int(size * c)`` then BOX upscale back (Pillow arithmetic)."""
    c = P.PIXELATE[severity - 1]
    _, _, h, w = x.shape
    pixels = torch.from_numpy(to_uint8(x)).double()
    small = pil_box_resize(pixels, int(h * c), int(w * c))
    return (pil_box_resize(small, h, w) / 255).to(x.dtype)


def jpeg_compression(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """PIL JPEG at quality ``c`` (default 4:2:0 chroma subsampling for RGB), one image at a
    time: encoding has no batched form."""
    quality = P.JPEG_COMPRESSION[severity - 1]
    channels = x.shape[1]
    if channels not in (1, 3):
        raise ValueError(f"jpeg_compression needs 1 or 3 channels, got {channels}")
    pixels = to_uint8(x).transpose(0, 2, 3, 1)
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if channels == 1 else image).save(
            buffer, "JPEG", quality=quality
        )
        decoded = np.asarray(Image.open(buffer))
        out[i] = decoded[..., None] if channels == 1 else decoded
    return torch.from_numpy(out.transpose(0, 3, 1, 2)).to(x.dtype) / 255


def _affine_source(n: int, h: int, w: int, jitter: float, rng: np.random.Generator):
    """Source coordinates of make_cifar_c.py's random affine step (``cv2.getAffineTransform``
    of three jittered points, applied by ``cv2.warpAffine``, which samples src(M^-1 p))."""
    center = np.array([h, w], dtype=np.float32) // 2
    size = min(h, w) // 3
    pts1 = np.array(
        [center + size, [center[0] + size, center[1] - size], center - size], dtype=np.float32
    ).astype(np.float64)
    pts2 = pts1 + rng.uniform(-jitter, jitter, size=(n, 3, 2)).astype(np.float32)
    design = np.concatenate([pts1, np.ones((3, 1))], axis=1)
    affine = np.linalg.solve(design[None], pts2).transpose(0, 2, 1)  # (n, 2, 3): p2 = A p1 + t
    inverse = np.linalg.inv(affine[:, :, :2])
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    dst = np.stack([xs, ys], 0).reshape(1, 2, -1) - affine[:, :, 2:]
    src = inverse @ dst  # (n, 2, H*W) in (x, y)
    return (
        torch.from_numpy(src[:, 1].reshape(n, h, w)),
        torch.from_numpy(src[:, 0].reshape(n, h, w)),
    )


def elastic_transform(x: torch.Tensor, severity: int, rng: np.random.Generator, scale: float):
    """Random affine warp (bilinear, BORDER_REFLECT_101) followed by a smooth random
    displacement field (uniform noise, Gaussian-filtered with truncate 3 and border
    'reflect', times alpha), sampled with ``map_coordinates(order=1, mode='reflect')``.

    The constants are fractions of IMSIZE = 32 in the original; here IMSIZE = 32 * scale.
    Difference: ``cv2.warpAffine`` quantizes bilinear weights to 1/32; we do not.
    """
    imsize = 32 * scale
    alpha, sigma, jitter = (f * imsize for f in P.ELASTIC_TRANSFORM[severity - 1])
    n, _, h, w = x.shape
    rows, cols = _affine_source(n, h, w, jitter, rng)
    warped = kernels.bilinear_sample(x, rows, cols, "mirror")
    fields = []
    for _ in range(2):  # dx, then dy
        noise = torch.from_numpy(rng.uniform(-1, 1, size=(n, 1, h, w)))
        fields.append(kernels.gaussian_filter(noise, sigma, "reflect", truncate=3.0)[:, 0] * alpha)
    dx, dy = fields
    grid_rows = torch.arange(h, dtype=torch.float64)[None, :, None] + dy
    grid_cols = torch.arange(w, dtype=torch.float64)[None, None, :] + dx
    return kernels.bilinear_sample(warped, grid_rows, grid_cols, "reflect").clamp(0, 1)
