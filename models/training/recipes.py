"""The training-recipe registry.

A recipe is a function ``(model, train, val, params, context) -> history`` plus a pydantic
parameter model holding the paper's defaults; the suite names it under a model's
``training:`` section. Recipes are built on :class:`models.training.loop.TrainingLoop`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from benchmark.datasets.base import ArrayDataset
from benchmark.fingerprints import source_digest
from benchmark.registry import Entry, Registry, StrictParams

if TYPE_CHECKING:
    from models.training.engine import TrainingJob


@dataclass
class TrainContext:
    """What a recipe needs besides the model and data."""

    device: torch.device
    seed: int
    state_path: Path  # per-epoch resume state, written atomically by the recipe
    progress: bool = True
    name: str = "train"  # shown on the progress bar
    # Set by the engine; lets a recipe train a cached twin model of the same architecture
    # (AR-AdaLS ranks examples on a vanilla model). None when a recipe is called directly.
    job: TrainingJob | None = None
    checkpoint_dir: Path | None = None
    # Mixed precision of the training loop's forward passes and losses (bfloat16/float16,
    # from the job's ``autocast``); None: float32. See TrainingLoop.
    autocast: torch.dtype | None = None


Recipe = Callable[..., dict[str, Any]]
RECIPES: Registry[Recipe] = Registry("training recipe")


def register_recipe(
    key: str, description: str, params: type[StrictParams], version: str = "1"
) -> Callable[[Recipe], Recipe]:
    """Register a recipe. The SHA-256 of the file defining ``fn`` is read now and enters
    the checkpoint key (:func:`recipe_code_version`): editing that file retrains. Bump
    ``version`` when a change elsewhere (the shared loop, a helper module) alters the weights
    the recipe produces."""

    def decorator(fn: Recipe) -> Recipe:
        extras = {"version": version, "code": source_digest(fn)}
        RECIPES.add(Entry(key, fn, description, params, extras))
        return fn

    return decorator


def recipe_code_version(key: str) -> str:
    """SHA-256 of the source file defining recipe ``key``, as imported by this process."""
    entry = RECIPES.get(key)
    return entry.extras.get("code") or source_digest(entry.obj)


__all__ = ["RECIPES", "ArrayDataset", "TrainContext", "recipe_code_version", "register_recipe"]
