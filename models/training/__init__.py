"""Training recipes (registered on import) and the cached train-or-load engine."""

from models.training import standard
from models.training.engine import TrainingJob, train_or_load
from models.training.recipes import RECIPES, TrainContext, register_recipe

__all__ = ["RECIPES", "TrainContext", "TrainingJob", "register_recipe", "standard", "train_or_load"]
