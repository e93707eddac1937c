"""Disk cache of generated corrupted sets.

A generated set is a pure function of (corruption, severity, seed, source images, length
scale, generator code): its file name hashes exactly those, with the source images identified
by the SHA-256 of their bytes and the code by ``GENERATOR_VERSION`` (shared code: chunking,
quantization) and the corruption's own ``version`` (``registry.VERSIONS``; in the key only
once bumped past "1", so the keys of unchanged corruptions stay). Bump one of them when a
change alters generated pixels. Files are written atomically (``atomic_path``), so a killed
run never leaves a truncated set that a later run would read; an unreadable file is
regenerated.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from benchmark.corruptions.registry import CHUNK, CORRUPTIONS, corrupt
from benchmark.utils import atomic_path, stable_hash

GENERATOR_VERSION = "1"


def images_fingerprint(images: torch.Tensor) -> str:
    """SHA-256 of the images' shape and float32 bytes: identity of the source data."""
    array = np.ascontiguousarray(images.float().numpy())
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def set_key(
    name: str, severity: int, seed: int, fingerprint: str, length_scale: float | None
) -> str:
    identity = {
        "corruption": name,
        "severity": severity,
        "seed": seed,
        "source": fingerprint,
        "length_scale": length_scale,
        "version": GENERATOR_VERSION,
        "chunk": CHUNK,
    }
    corruption_version = CORRUPTIONS[name].version if name in CORRUPTIONS else "1"
    if corruption_version != "1":
        identity["corruption_version"] = corruption_version
    return stable_hash(identity, length=24)


def cached_corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    *,
    seed: int,
    length_scale: float | None,
    cache_dir: str | Path | None,
    fingerprint: str | None = None,
) -> torch.Tensor:
    """:func:`corrupt`, reading/writing ``<cache_dir>/<name>-s<severity>-<key>.npy`` (uint8
    NCHW). ``cache_dir=None`` disables the cache."""
    if cache_dir is None:
        return corrupt(images, name, severity, seed=seed, length_scale=length_scale)
    fingerprint = fingerprint or images_fingerprint(images)
    key = set_key(name, severity, seed, fingerprint, length_scale)
    path = Path(cache_dir) / f"{name}-s{severity}-{key}.npy"
    if path.is_file():
        try:
            array = np.load(path, allow_pickle=False)
            if array.shape == tuple(images.shape) and array.dtype == np.uint8:
                return torch.from_numpy(array)
        except (OSError, ValueError):
            pass  # unreadable: regenerate below
    out = corrupt(images, name, severity, seed=seed, length_scale=length_scale)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, out.numpy())
    return out
