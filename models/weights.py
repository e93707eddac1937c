"""Finding a checkpoint file: a local path, or a URL with its SHA-256 downloaded at most once.

Why a content address rather than a file name: the same published weights travel under many
names (``resnet20-12fca82f.th``, ``akamaster_resnet20-12fca82f.th``, ...), and a cache keyed on
names serves stale or tampered files. A URL checkpoint is therefore identified by its SHA-256
alone, which is also what enters the job cache key, and is looked up, in order, in

1. the suite's ``weights_dir`` folders, then ``$BENCHMARK_WEIGHTS_DIR`` (``os.pathsep``-
   separated): a file named like the URL's last path component, else any file with the right
   hash (so weights copied from elsewhere under another name are found offline);
2. the weights cache, ``$BENCHMARK_WEIGHTS_CACHE`` or ``~/.cache/robust-benchmark/weights``;
3. the network: downloaded into the cache under a file lock (concurrent workers download it
   once), hashed while streaming, renamed into place only when the hash matches.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from filelock import FileLock

from benchmark.errors import BenchmarkError
from benchmark.utils import atomic_path, copy_capped, file_sha256

WEIGHTS_DIR_ENV = "BENCHMARK_WEIGHTS_DIR"
WEIGHTS_CACHE_ENV = "BENCHMARK_WEIGHTS_CACHE"
DOWNLOAD_TIMEOUT_S = 60
_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> SHA-256, per process


def weights_cache_dir() -> Path:
    """Where downloaded checkpoints are kept."""
    configured = os.environ.get(WEIGHTS_CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "robust-benchmark" / "weights"


def search_dirs(suite_dirs: Sequence[str]) -> list[Path]:
    """The suite's weights folders, then those of ``$BENCHMARK_WEIGHTS_DIR``."""
    env = [d for d in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep) if d]
    return [Path(d).expanduser() for d in [*suite_dirs, *env]]


def url_file_name(url: str) -> str:
    name = Path(urllib.parse.urlparse(url).path).name
    return name or "checkpoint"


def cached_sha256(path: Path) -> str:
    """SHA-256 of ``path``, remembered while its size and mtime do not change."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


def _candidates(folder: Path, preferred_name: str) -> Iterable[Path]:
    if not folder.is_dir():
        return
    preferred = folder / preferred_name
    if preferred.is_file():
        yield preferred
    for path in sorted(folder.iterdir()):
        if path.is_file() and path != preferred and not path.name.startswith("."):
            yield path


def find_local(sha256: str, folders: Sequence[Path], preferred_name: str) -> Path | None:
    """A file with SHA-256 ``sha256`` in ``folders`` (the preferred name is hashed first)."""
    for folder in folders:
        for path in _candidates(folder, preferred_name):
            if cached_sha256(path) == sha256:
                return path
    return None


def cache_path(url: str, sha256: str) -> Path:
    return weights_cache_dir() / f"{sha256[:16]}-{url_file_name(url)}"


MAX_DOWNLOAD_ENV = "BENCHMARK_MAX_DOWNLOAD_BYTES"
MAX_DOWNLOAD_BYTES = 8 << 30  # 8 GiB: above the largest public checkpoints of the field


def max_download_bytes() -> int:
    """The size cap of one checkpoint download (``$BENCHMARK_MAX_DOWNLOAD_BYTES`` overrides)."""
    value = os.environ.get(MAX_DOWNLOAD_ENV, "")
    try:
        return int(value) if value else MAX_DOWNLOAD_BYTES
    except ValueError:
        raise BenchmarkError(
            f"${MAX_DOWNLOAD_ENV}: expected a number of bytes, got {value!r}"
        ) from None


def download(url: str, sha256: str, target: Path, progress: bool = True) -> Path:
    """Stream ``url`` into ``target`` atomically, refusing it unless its SHA-256 matches."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    limit = max_download_bytes()
    with atomic_path(target) as tmp:
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
                open(tmp, "wb") as out,
            ):
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=f"download {url_file_name(url)}",
                    disable=not progress,
                ) as bar:

                    def seen(block: bytes) -> None:
                        digest.update(block)
                        bar.update(len(block))

                    copy_capped(response, out, limit, seen)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise BenchmarkError(f"checkpoint: could not download {url}: {exc}") from None
        if (actual := digest.hexdigest()) != sha256:
            raise BenchmarkError(
                f"checkpoint: {url} has SHA-256 {actual[:16]}..., expected {sha256[:16]}...; "
                "refusing to use it"
            )
    return target


def resolve_url(
    url: str, sha256: str, suite_dirs: Sequence[str] = (), progress: bool = True
) -> Path:
    """The local file of checkpoint (``url``, ``sha256``), downloading it if needed."""
    folders = search_dirs(suite_dirs)
    if found := find_local(sha256, folders, url_file_name(url)):
        return found
    target = cache_path(url, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file() and cached_sha256(target) == sha256:
            return target
        try:
            return download(url, sha256, target, progress)
        except BenchmarkError as exc:
            where = ", ".join(str(f) for f in folders) or "none configured"
            raise BenchmarkError(
                f"{exc}; offline, put the file (SHA-256 {sha256}) in a weights folder (suite "
                f"'weights_dir' or ${WEIGHTS_DIR_ENV}; searched: {where})"
            ) from None


def resolve_checkpoint(
    path: str | None,
    url: str | None,
    sha256: str | None,
    suite_dirs: Sequence[str] = (),
    progress: bool = True,
) -> Path:
    """The local file for a suite ``checkpoint`` (verifying ``sha256`` when given)."""
    if url is not None:
        assert sha256 is not None  # the suite schema requires it with a URL
        return resolve_url(url, sha256, suite_dirs, progress)
    assert path is not None
    local = Path(path)
    if not local.is_file():
        raise BenchmarkError(f"{path}: checkpoint file not found")
    if sha256 is not None and (actual := cached_sha256(local)) != sha256:
        raise BenchmarkError(
            f"{path}: checkpoint SHA-256 {actual[:16]}... does not match the suite's "
            f"{sha256[:16]}...: wrong or modified file"
        )
    return local
