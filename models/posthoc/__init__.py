"""Post-hoc methods fitted on a validation split (registered on import): PEP and temperature
scaling. Call ``fit_posthoc(method, model, val_data, params, seed)`` or the functions directly."""

from models.posthoc import pep, temperature
from models.posthoc.pep import PEPParams, fit_pep, pep_ensemble
from models.posthoc.registry import POSTHOC, fit_posthoc, register_posthoc
from models.posthoc.temperature import TemperatureParams, TemperatureScaled, fit_temperature

__all__ = [
    "POSTHOC",
    "PEPParams",
    "TemperatureParams",
    "TemperatureScaled",
    "fit_pep",
    "fit_posthoc",
    "fit_temperature",
    "pep",
    "pep_ensemble",
    "register_posthoc",
    "temperature",
]
