"""Model zoo: the registry, the built-in builders (registered on import), checkpoints, training."""

from models import resnet, small_cnn
from models.checkpoints import load_checkpoint, save_checkpoint
from models.registry import MODELS, NormalizedModel, build_model, register_model

__all__ = [
    "MODELS",
    "NormalizedModel",
    "build_model",
    "load_checkpoint",
    "register_model",
    "resnet",
    "save_checkpoint",
    "small_cnn",
]
