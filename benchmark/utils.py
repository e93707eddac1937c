"""Small helpers shared across the engine: hashing, atomic writes, seeding, devices."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable object that is stable across processes and machines."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Run the block that writes ``path``; an :class:`OSError` it raises (disk full,
    read-only file system, no permission) becomes a one-line :class:`WriteError` naming
    ``path`` instead of a traceback."""
    from benchmark.errors import WriteError

    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from None


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush ``path`` (a file or a directory) to disk: a rename is atomic but, after a power
    loss, may survive while the renamed file's contents did not (or vanish itself, unless its
    directory is flushed too)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` only on success.

    A process killed mid-write leaves at most a stray temporary file, never a half-written
    ``target``: rename within one directory is atomic on POSIX. The file is fsynced before
    the rename and its directory after, so a power loss cannot leave ``target`` renamed but
    empty. Failing to write (disk full, read-only) raises a one-line :class:`WriteError`
    naming ``target``.
    """
    target = Path(target)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
    try:
        with writing(target):
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; follow the umask
            yield Path(tmp)
            fsync_path(tmp)
            os.replace(tmp, target)
            fsync_path(target.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def save_torch_atomic(obj: object, target: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``target`` atomically, with bytes that depend only on ``obj``.

    ``torch.save`` to a path names the zip archive's root folder after the file, so saving
    through a randomly named temporary file gave identical weights a different SHA-256 on
    every save; serializing to memory first uses a fixed archive name."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())


def seed_everything(seed: int) -> None:
    """Seed every global RNG a job might touch so results do not depend on job order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed derived from arbitrary parts (e.g. suite seed and job key)."""
    return int(stable_hash(list(parts), length=15), 16)


def resolve_device(name: str) -> torch.device:
    """Map the suite's ``auto|cpu|cuda`` to a torch device, failing clearly if CUDA is absent."""
    from benchmark.errors import BenchmarkError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


class DownloadTooLarge(OSError):
    """A download passed its size cap (an endless or wrong stream); raised before more than
    ``limit`` bytes reach the disk."""


def copy_capped(
    response: Any,
    out: Any,
    limit: int,
    on_block: Callable[[bytes], None] | None = None,
) -> int:
    """Copy an HTTP ``response`` into the open file ``out`` in 1 MiB blocks, refusing more
    than ``limit`` bytes (a declared Content-Length above it is refused before reading):
    every download is checked by its hash only at the end, so without a cap a server sending
    an endless stream fills the disk first. Returns the bytes copied."""
    declared = int(response.headers.get("Content-Length") or 0)
    if declared > limit:
        raise DownloadTooLarge(f"declares {declared} bytes, more than the cap of {limit}")
    copied = 0
    while block := response.read(1 << 20):
        copied += len(block)
        if copied > limit:
            raise DownloadTooLarge(f"sent more than the cap of {limit} bytes")
        out.write(block)
        if on_block is not None:
            on_block(block)
    return copied


def format_duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3.5 h``: durations as a person reads them."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
