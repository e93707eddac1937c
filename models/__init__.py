"""Model zoo: the registry, the built-in builders (registered on import), checkpoints, training,
ensembles and post-hoc methods (PEP, temperature scaling)."""

from models import (
    kap_resnet,
    posthoc,
    resnet,
    robustbench_zoo,
    small_cnn,
    smooth_resnet,
    verification_zoo,
)
from models.checkpoints import load_checkpoint, save_checkpoint
from models.ensemble import Ensemble, MemberSpec, load_ensemble
from models.registry import MODELS, NormalizedModel, build_model, register_model

__all__ = [
    "MODELS",
    "Ensemble",
    "MemberSpec",
    "NormalizedModel",
    "build_model",
    "kap_resnet",
    "load_checkpoint",
    "load_ensemble",
    "posthoc",
    "register_model",
    "resnet",
    "robustbench_zoo",
    "save_checkpoint",
    "small_cnn",
    "smooth_resnet",
    "verification_zoo",
]
