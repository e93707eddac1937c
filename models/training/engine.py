"""Train-or-reuse: produce a checkpoint for (builder, params, recipe, data, seed), cached by hash.

The cache key covers everything that determines the weights, so a second run -- or a second
suite naming the same model -- reuses the file instead of retraining: the builder and recipe
with their parameters and code (the SHA-256 of the files defining them), the data (for suites,
the fingerprint of the files read: :func:`benchmark.runner.jobs.training_job`) and the seed.
A file lock per checkpoint makes concurrent workers (process pool, Ray, two ``run`` commands)
train it once.
Checkpoints are written atomically and their SHA-256 is recorded beside them (``<name>.json``);
a damaged entry -- record missing, unparsable or without the hash, checkpoint truncated, emptied
or edited -- is reported in one line and retrained, never served or crashed on, and so is an
unreadable per-epoch resume state (training then starts from the first epoch:
:func:`models.training.loop.read_resume_state`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.inference import autocast_dtype
from benchmark.utils import derive_seed, stable_hash, write_text_atomic, writing
from models.checkpoints import load_checkpoint, save_checkpoint
from models.registry import Normalization, NormalizedModel, build_model, model_code_version
from models.training.recipes import RECIPES, TrainContext, recipe_code_version
from models.weights import resolve_checkpoint

log = logging.getLogger(__name__)

# CPU training runs with this many intra-op threads whatever the machine or executor: the
# weight-gradient reductions of convolutions split the batch across threads, so the weights
# depend on the thread count (1 vs 2 threads give different checkpoints). Pinning it makes a
# checkpoint the same in process, in a pool worker, on Ray, and on any CPU. Part of the key.
TRAINING_CPU_THREADS = 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class WarmStart:
    """The weights a training job starts from instead of a random initialization: a weights
    file (identified by its SHA-256; ``path`` or ``url`` says where it is) or the checkpoint
    of another training job (trained first, through the same cache)."""

    sha256: str | None = None
    path: str | None = None
    url: str | None = None
    weights_dirs: tuple[str, ...] = ()
    checkpoint_key: str | None = None
    strip_prefix: str | None = None
    job: TrainingJob | None = None

    def identity(self) -> dict[str, Any]:
        """What identifies the starting weights in the seed key: the file's hash, or the
        parent job's seed key (its full key, with code versions, is in :meth:`TrainingJob.key`)."""
        if self.job is not None:
            return {"job": self.job.seed_key()}
        extraction = {"checkpoint_key": self.checkpoint_key, "strip_prefix": self.strip_prefix}
        return {"sha256": self.sha256, **{k: v for k, v in extraction.items() if v is not None}}


@dataclass(frozen=True)
class TrainingJob:
    """Everything that determines a trained model's weights."""

    model_key: str
    model_params: dict[str, Any]
    recipe: str
    recipe_params: dict[str, Any]
    # identifies the training data: dataset name, splits and, under "content", the
    # fingerprint of the files read (in the key, not in the seeds: see seed_key)
    data: dict[str, Any]
    seed: int
    # (mean, std) replacing the dataset's inside the model; in the key only when set, so
    # models without an override keep their checkpoints
    normalization: Normalization | None = None
    # mixed-precision training ("bf16" / "fp16", see TrainingLoop); None: float32. In the
    # key only when set, and never in the seeds: the same initialization and data order as
    # float32, so a comparison shows the precision's effect and not new random draws
    autocast: str | None = None
    # warm start (fine-tuning); in the key only when set, so trainings from a random
    # initialization keep their checkpoints
    init: WarmStart | None = None
    # NHWC training (rounding only): in the key when set, never in the seeds, as autocast
    channels_last: bool = False

    def _identity(self) -> dict[str, Any]:
        recipe = RECIPES.get(self.recipe)
        full_params = recipe.params_model.model_validate(self.recipe_params).model_dump()
        override: dict[str, Any] = {}
        if self.normalization is not None:
            override["normalization"] = self.normalization
        if self.init is not None:
            override["init"] = self.init.identity()
        return {
            **override,
            "model": self.model_key,
            "model_params": self.model_params,
            "recipe": self.recipe,
            "recipe_version": recipe.extras["version"],
            "recipe_params": full_params,
            "data": {k: v for k, v in self.data.items() if k != "content"},
            "seed": self.seed,
            "cpu_threads": TRAINING_CPU_THREADS,
        }

    def key(self) -> str:
        """The checkpoint's cache key: :meth:`seed_key`'s identity plus the code versions of
        the builder and the recipe (SHA-256 of their source files) and the data fingerprint."""
        versions = {
            "model_code": model_code_version(self.model_key),
            "recipe_code": recipe_code_version(self.recipe),
            "data_content": self.data.get("content"),
        }
        if self.init is not None and self.init.job is not None:
            versions["init_checkpoint"] = self.init.job.key()
        precision: dict[str, Any] = {} if self.autocast is None else {"autocast": self.autocast}
        if self.channels_last:
            precision["channels_last"] = True
        return stable_hash({**self._identity(), **precision, "versions": versions})

    def seed_key(self) -> str:
        """What the initialization and training seeds derive from: the key without code
        versions and data fingerprints (the checkpoint key before they existed), so that an
        edit that changes no number (a comment, a moved folder) retrains the same weights,
        and one that does shows its effect rather than new random draws."""
        return stable_hash(self._identity())


def checkpoint_path(job: TrainingJob, checkpoint_dir: Path) -> Path:
    """Where the engine keeps (or will keep) the checkpoint of ``job``."""
    return checkpoint_dir / f"{job.model_key}-{job.key()}.pt"


def train_or_load(
    job: TrainingJob,
    train: ArrayDataset,
    val: ArrayDataset | None,
    checkpoint_dir: Path,
    device: torch.device,
    progress: bool = True,
) -> tuple[NormalizedModel, Path]:
    """Return the trained model for ``job``, training it only if no cached checkpoint exists."""
    key = job.key()
    checkpoint = checkpoint_path(job, checkpoint_dir)
    lock = FileLock(str(checkpoint.with_suffix(".lock")))
    with writing(checkpoint_dir):  # read-only or full: one line naming the folder
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    # One trainer per checkpoint across processes and hosts sharing the folder: the others
    # wait here, then find the finished checkpoint and load it instead of training again.
    try:
        return _train_or_load_locked(job, key, checkpoint, train, val, device, progress)
    finally:
        lock.release()


def _fresh_model(job: TrainingJob, train: ArrayDataset) -> NormalizedModel:
    """The untrained model of ``job``, initialized from its seed."""
    torch.manual_seed(derive_seed(job.seed, job.seed_key(), "init"))
    return build_model(job.model_key, job.model_params, train.info, normalization=job.normalization)


def _warm_start(
    model: NormalizedModel,
    init: WarmStart,
    train: ArrayDataset,
    val: ArrayDataset | None,
    checkpoint_dir: Path,
    device: torch.device,
    progress: bool,
) -> None:
    """Load the starting weights of a fine-tuning job into ``model`` (strictly: a warm start
    that silently left some layers random would not be the model the suite describes)."""
    if init.job is not None:
        parent_val = val if init.job.data.get("val") else None
        _, path = train_or_load(init.job, train, parent_val, checkpoint_dir, device, progress)
        load_checkpoint(model, path)
        return
    path = resolve_checkpoint(init.path, init.url, init.sha256, init.weights_dirs, progress)
    load_checkpoint(
        model,
        path,
        expected_sha256=init.sha256,
        checkpoint_key=init.checkpoint_key,
        strip_prefix=init.strip_prefix,
    )


def _load_cached(model: NormalizedModel, checkpoint: Path, meta_path: Path) -> str | None:
    """Load the cached checkpoint into ``model``; return why it cannot be served instead
    (``None``: loaded). A checkpoint without its record, a record that does not parse or
    names no SHA-256, a file that does not match it (truncated, emptied, edited) or cannot be
    read: each is a damaged entry, retrained rather than served or crashed on."""
    if not meta_path.is_file():
        return f"{meta_path.name} is missing"
    if not checkpoint.is_file():
        return f"{checkpoint.name} is missing"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{meta_path.name} is not valid JSON"
    sha = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(sha, str) or len(sha) != 64:
        return f"{meta_path.name} records no SHA-256 of the checkpoint"
    try:
        load_checkpoint(model, checkpoint, expected_sha256=sha)
    except BenchmarkError as exc:
        return str(exc).removeprefix(f"{checkpoint}: ")
    return None


def _train_or_load_locked(
    job: TrainingJob,
    key: str,
    checkpoint: Path,
    train: ArrayDataset,
    val: ArrayDataset | None,
    device: torch.device,
    progress: bool,
) -> tuple[NormalizedModel, Path]:
    checkpoint_dir = checkpoint.parent
    meta_path = checkpoint.with_suffix(".json")
    model = _fresh_model(job, train)
    if checkpoint.is_file() or meta_path.is_file():
        problem = _load_cached(model, checkpoint, meta_path)
        if problem is None:
            return model.to(device).eval(), checkpoint
        log.warning("checkpoint cache entry %s: %s; retraining it", checkpoint, problem)
        model = _fresh_model(job, train)  # a failed load may have filled in some weights
    if job.init is not None:
        _warm_start(model, job.init, train, val, checkpoint_dir, device, progress)

    recipe = RECIPES.get(job.recipe)
    params = recipe.params_model.model_validate(job.recipe_params)
    ctx = TrainContext(
        device=device,
        seed=derive_seed(job.seed, job.seed_key(), "train"),
        state_path=checkpoint_dir / f"{job.model_key}-{key}.state.pt",
        progress=progress,
        name=f"train {job.model_key}",
        job=job,
        checkpoint_dir=checkpoint_dir,
        autocast=autocast_dtype(job.autocast, device, "training.autocast"),
    )
    torch.manual_seed(ctx.seed)
    if job.channels_last:
        model.use_channels_last()
    with torch_threads(TRAINING_CPU_THREADS) if device.type == "cpu" else nullcontext():
        result = recipe.obj(model, train, val, params, ctx)
    if job.channels_last:
        model.use_contiguous()  # saved, and served, as a cached checkpoint would be
    model.cpu()
    sha = save_checkpoint(model, checkpoint)
    meta = {"sha256": sha, "job": job.__dict__, "key": key, **result}
    write_text_atomic(meta_path, json.dumps(meta, indent=1, default=str))
    ctx.state_path.unlink(missing_ok=True)
    return model.to(device).eval(), checkpoint
