"""Training recipes (registered on import), the shared epoch loop and the cached engine."""

from models.training import loop, standard
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
    "checkpoint_path",
    "loop",
    "register_recipe",
    "standard",
    "train_or_load",
]
