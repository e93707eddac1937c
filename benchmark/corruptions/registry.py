"""The corruption table (name -> family and function), name selection and :func:`corrupt`.

Every corruption function has the signature ``fn(x, severity, rng, scale) -> x'`` on float
(N, C, H, W) images in [0, 1], C = 1 or 3, returning floats in [0, 1] before quantization.

Size scaling: the CIFAR constants are in pixels of a 32 px image. ``length_scale`` (default
``min(H, W) / 32``) multiplies every length: Gaussian/alias sigmas, disk and motion-blur
radii, the glass-blur shuffle distance (rounded, at least 1), spatter's blur sigmas and
distance cap, the elastic transform's IMSIZE and frost's photograph resize factor (0.2).
Relative quantities are unchanged: noise levels, zoom factors, pixelate factors, blend
weights, JPEG quality. So an 8x8 digit gets the blur a 32x32 image would get after
downsampling by 4; ``length_scale: 1.0`` applies CIFAR pixel lengths as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.corruptions import blur, digital, noise, weather

CorruptionFn = Callable[[torch.Tensor, int, np.random.Generator, float], torch.Tensor]
SEVERITIES = (1, 2, 3, 4, 5)
CHUNK = 1000  # images per call: bounds memory; part of the generator version (RNG draw shapes)


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str
    fn: CorruptionFn
    standard: bool
    version: str = "1"  # bump when a change alters this corruption's pixels (cache key)


_TABLE = [
    (noise.gaussian_noise, "noise", True),
    (noise.shot_noise, "noise", True),
    (noise.impulse_noise, "noise", True),
    (blur.defocus_blur, "blur", True),
    (blur.glass_blur, "blur", True),
    (blur.motion_blur, "blur", True),
    (blur.zoom_blur, "blur", True),
    (weather.snow, "weather", True),
    (weather.frost, "weather", True),
    (weather.fog, "weather", True),
    (weather.brightness, "weather", True),
    (digital.contrast, "digital", True),
    (digital.elastic_transform, "digital", True),
    (digital.pixelate, "digital", True),
    (digital.jpeg_compression, "digital", True),
    (noise.speckle_noise, "noise", False),
    (blur.gaussian_blur, "blur", False),
    (weather.spatter, "weather", False),
    (digital.saturate, "digital", False),
]
# Per-corruption code versions past "1" (they enter the cached sets' keys, see cache.py):
VERSIONS = {
    "frost": "2",  # 2: crops of the frost photographs instead of a procedural texture
}
CORRUPTIONS: dict[str, Corruption] = {
    fn.__name__: Corruption(fn.__name__, family, fn, standard, VERSIONS.get(fn.__name__, "1"))
    for fn, family, standard in _TABLE
}
STANDARD: tuple[str, ...] = tuple(c.name for c in CORRUPTIONS.values() if c.standard)
EXTRA: tuple[str, ...] = tuple(c.name for c in CORRUPTIONS.values() if not c.standard)
GROUPS: dict[str, tuple[str, ...]] = {
    "standard": STANDARD,
    "extra": EXTRA,
    "all": STANDARD + EXTRA,
}


def resolve_corruptions(selection: str | Sequence[str]) -> list[str]:
    """``"standard"`` (the 15 of CIFAR-10-C), ``"extra"`` (4), ``"all"`` or a list of names."""
    if isinstance(selection, str):
        if selection not in GROUPS:
            raise ValueError(
                f"unknown corruption group '{selection}' (use {', '.join(GROUPS)} or a list)"
            )
        return list(GROUPS[selection])
    unknown = [name for name in selection if name not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption(s) {unknown} (known: {', '.join(CORRUPTIONS)})")
    if len(set(selection)) != len(selection):
        raise ValueError(f"duplicate corruption names in {list(selection)}")
    return list(selection)


def default_length_scale(height: int, width: int) -> float:
    return min(height, width) / 32.0


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] to uint8 by truncation, as make_cifar_c.py's ``np.uint8(...)``
    (a 1e-3 allowance keeps exact k/255 values from float32 rounding down to k-1)."""
    return torch.floor(x.double().clamp(0, 1) * 255 + 1e-3).clamp(0, 255).to(torch.uint8)


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    *,
    seed: int,
    length_scale: float | None = None,
) -> torch.Tensor:
    """Corrupt float images (N, C, H, W) in [0, 1]; returns uint8 (N, C, H, W).

    Deterministic for ``seed``: one ``numpy.random.Generator`` is consumed chunk by chunk
    (``CHUNK`` images), never the global RNG.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption '{name}' (known: {', '.join(CORRUPTIONS)})")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1..5, got {severity}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 1|3, H, W) images, got {tuple(images.shape)}")
    fn = CORRUPTIONS[name].fn
    scale = length_scale or default_length_scale(*images.shape[-2:])
    rng = np.random.default_rng(seed)
    out = torch.empty(images.shape, dtype=torch.uint8)
    with torch.no_grad():
        for start in range(0, len(images), CHUNK):
            chunk = images[start : start + CHUNK].float().contiguous()
            out[start : start + CHUNK] = quantize(fn(chunk, severity, rng, scale))
    return out
