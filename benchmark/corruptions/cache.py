"""Disk cache of generated corrupted sets.

A generated set is a pure function of (corruption, severity, seed, source images, length
scale, generator code): its file name hashes exactly those, with the source images identified
by the SHA-256 of their bytes and the code by ``GENERATOR_VERSION`` (shared code: chunking,
quantization) and the corruption's own ``version`` (``registry.VERSIONS``; in the key only
once bumped past "1", so the keys of unchanged corruptions stay). Bump one of them when a
change alters generated pixels. Files are written atomically (``atomic_path``), so a killed
run never leaves a truncated set that a later run would read, and each has its SHA-256 beside
it (``.sha256``): a set that is missing it, or does not match it, is reported in one line and
regenerated, never served.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from benchmark.corruptions.registry import CHUNK, CORRUPTIONS, corrupt
from benchmark.utils import atomic_path, file_sha256, stable_hash, write_text_atomic

log = logging.getLogger(__name__)

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
    digest_path = path.with_suffix(".sha256")
    if path.is_file():
        problem = _cached_set_problem(path, digest_path)
        if problem is None:
            array = np.load(path, allow_pickle=False)
            if array.shape == tuple(images.shape) and array.dtype == np.uint8:
                return torch.from_numpy(array)
            problem = f"holds {array.dtype} {array.shape}, expected uint8 {tuple(images.shape)}"
        log.warning("corruption cache %s: %s; regenerating it", path, problem)
    out = corrupt(images, name, severity, seed=seed, length_scale=length_scale)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, out.numpy())
    write_text_atomic(digest_path, file_sha256(path) + "\n")
    return out


def _cached_set_problem(path: Path, digest_path: Path) -> str | None:
    """Why a cached set cannot be served (None: it can): its SHA-256, written beside it
    after the set, is missing or differs (an edited, truncated or half-copied file)."""
    try:
        expected = digest_path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return f"no readable {digest_path.name}"
    if file_sha256(path) != expected:
        return "does not match its SHA-256 (edited or truncated)"
    return None
