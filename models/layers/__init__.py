"""Building blocks for the registered networks.

One module per idea: ``common`` (width helper), ``kap`` (kernel average pooling), ``noise``
(train-time Gaussian activation noise), ``smoothing`` (Prob / Blur / Smooth) and ``dropout``
(MC dropout that stays on at test time).
"""

from models.layers.common import scaled
from models.layers.dropout import MCDropout
from models.layers.kap import KernelAvgPool, kap_sheet
from models.layers.noise import GaussianNoise, InputNoise
from models.layers.smoothing import BLUR_KERNELS, Blur, Prob, Smooth

__all__ = [
    "BLUR_KERNELS",
    "Blur",
    "GaussianNoise",
    "InputNoise",
    "KernelAvgPool",
    "MCDropout",
    "Prob",
    "Smooth",
    "kap_sheet",
    "scaled",
]
