"""Training recipes (registered on import), the shared epoch loop and the cached engine."""

from models.training import (
    ar_adals,
    label_smoothing,
    loop,
    noise,
    pgd_at,
    sam_swa,
    standard,
    trades,
)
from models.training.engine import TrainingJob, checkpoint_path, train_or_load
from models.training.loop import BatchState, LoopParams, TrainingLoop
from models.training.recipes import RECIPES, TrainContext, register_recipe

__all__ = [
    "RECIPES",
    "BatchState",
    "LoopParams",
    "TrainContext",
    "TrainingJob",
    "TrainingLoop",
    "ar_adals",
    "checkpoint_path",
    "label_smoothing",
    "loop",
    "noise",
    "pgd_at",
    "register_recipe",
    "sam_swa",
    "standard",
    "trades",
    "train_or_load",
]
