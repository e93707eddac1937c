"""Content fingerprints for cache keys: data files, and the source code of registered objects.

A cached result is only as good as its key: a key that named a dataset's folder, or a model
by its registry name, served old numbers after the files or the code behind them changed.
Keys therefore hold *what was read*:

- **Data files**: each file's name relative to its dataset folder, its size and its SHA-256
  (:func:`files_fingerprint`). The folder itself is left out, so two identical copies of a
  dataset share results while a copy differing in one byte does not. Hashing gigabytes on
  every run would be slow, so a file's SHA-256 is remembered, in this process and in a small
  sidecar JSON file per data file under :func:`fingerprint_cache_dir`, for as long as its
  absolute path, size, modification time and inode change time (``st_ctime_ns``, which
  ``touch`` and ``cp -p`` cannot set back) stay the same. A file modified less than
  :data:`RACY_S` seconds before it is hashed is not remembered (file systems stamp times in
  ticks of up to 2 s, so a same-size rewrite within the tick would keep its stat), and a
  stale or unwritable sidecar only costs a re-hash, never a wrong fingerprint.
- **Code**: the SHA-256 of the source file that defines a registered builder or recipe
  (:func:`source_digest`), read when it is registered, i.e. the code this process imported.
  For the project's own code only that one file is hashed, never the whole repository:
  editing ``models/resnet.py`` changes the keys of every ResNet (their cached results and
  checkpoints are recomputed: intended); modules it imports (``models/layers``) are not
  hashed, so a change there that alters numbers needs a ``version`` bump where the registry
  offers one (recipes, evaluations, attacks) or clearing the cache. A plugin's code is
  hashed with everything it imported from its own folder (:func:`plugin_digest`), and that
  holds for its models, recipes, datasets, evaluations and attacks alike
  (:func:`benchmark.runner.jobs.plugin_code`): an edited helper module beside the plugin
  recomputes what it feeds. A plugin dataset without a content fingerprint is keyed by its
  loader's code, its ``root`` and every file under that root.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.utils import file_sha256, stable_hash, write_text_atomic

FINGERPRINT_CACHE_ENV = "BENCHMARK_FINGERPRINT_CACHE"
RACY_S = 3.0  # files modified more recently than this when hashed are hashed again next time
# (absolute path, size, mtime_ns, ctime_ns) -> SHA-256, for this process
_MEMO: dict[tuple[str, int, int, int], str] = {}


def fingerprint_cache_dir() -> Path:
    """Where the sidecar SHA-256 records of data files are kept."""
    configured = os.environ.get(FINGERPRINT_CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "robust-benchmark" / "fingerprints"


def _sidecar(path: str) -> Path:
    return fingerprint_cache_dir() / f"{stable_hash(path, 32)}.json"


def content_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file ``path``, read from disk only when its (absolute path, size,
    mtime, ctime) has not been hashed before, in this process or (sidecar) any other."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    memo_key = (str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    record = {
        "path": memo_key[0],
        "size": memo_key[1],
        "mtime_ns": memo_key[2],
        "ctime_ns": memo_key[3],
    }
    sidecar = _sidecar(memo_key[0])
    digest = None
    try:
        stored = json.loads(sidecar.read_text())
        if isinstance(stored, dict) and {k: stored.get(k) for k in record} == record:
            digest = stored.get("sha256")
    except (OSError, ValueError):
        pass
    if isinstance(digest, str) and len(digest) == 64:
        _MEMO[memo_key] = digest
        return digest
    digest = file_sha256(resolved)
    if time.time_ns() - stat.st_mtime_ns < RACY_S * 1e9:
        return digest  # could still change within its time stamp's tick: do not remember
    _MEMO[memo_key] = digest
    with contextlib.suppress(OSError):  # best effort: read-only, it is hashed again next time
        write_text_atomic(sidecar, json.dumps({**record, "sha256": digest}))
    return digest


def files_fingerprint(folder: str | os.PathLike[str], names: Iterable[str]) -> dict[str, Any]:
    """``{relative name: [size, sha256]}`` of the files ``names`` under ``folder``: what a
    dataset read, independent of where its folder lies."""
    folder = Path(folder)
    fingerprint = {}
    for name in sorted(names):
        path = folder / name
        fingerprint[Path(name).as_posix()] = [path.stat().st_size, content_sha256(path)]
    return fingerprint


# The project's own packages: their files are keyed one file each (see the module docstring)
PROJECT_PACKAGES = frozenset({"benchmark", "models"})
# never part of a plugin's code, wherever the plugin sits (the checkout's benchmarks, tests)
NOT_PLUGIN_CODE = PROJECT_PACKAGES | {"benchmarks", "tests", "conftest"}


def is_plugin_code(obj: Any) -> bool:
    """Whether ``obj`` (a registered function or class) comes from outside the project."""
    module = getattr(inspect.unwrap(obj) if callable(obj) else obj, "__module__", "") or ""
    return module.split(".")[0] not in PROJECT_PACKAGES


def plugin_digest(source_file: Path) -> str:
    """SHA-256 (16 hex digits) of a plugin's code: its file plus every module imported so far
    from the plugin's own folder (and below it), outside the project's packages and the
    installed libraries. A plugin whose builder lives in a helper module beside it, or
    imports one, gets new keys when that helper is edited, not only when the plugin file is."""
    folder = source_file.resolve().parent
    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix)}
    files = {source_file.resolve()}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name.split(".")[0] in NOT_PLUGIN_CODE or not path.endswith(".py"):
            continue
        resolved = Path(path).resolve()
        if resolved.is_relative_to(folder) and not any(
            resolved.is_relative_to(root) for root in installed
        ):
            files.add(resolved)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.relative_to(folder)}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()[:16]


def source_digest(obj: Any) -> str:
    """SHA-256 (16 hex digits) of the source file defining ``obj`` (a function or class).

    Objects without a readable source file (defined in an interactive session) are
    identified by their source text if :mod:`inspect` finds it, else by their qualified name
    alone (``"unknown:<module>.<name>"``: such keys do not follow code edits).
    """
    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        source_file = inspect.getsourcefile(target)
    except TypeError:  # built-in
        source_file = None
    if source_file and os.path.isfile(source_file):
        if not is_plugin_code(target):
            return file_sha256(source_file)[:16]  # small files, hashed once per registration
        return plugin_digest(Path(source_file))
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        module = getattr(target, "__module__", "?")
        return f"unknown:{module}.{getattr(target, '__qualname__', repr(target))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
