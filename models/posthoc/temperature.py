"""Temperature scaling (Guo et al. 2017), the baseline the PEP paper compares against.

One scalar T > 0 divides the logits; T is the minimiser of the validation NLL. We optimise
beta = 1/T: NLL(beta) = mean_i [logsumexp_k(beta z_ik) - beta z_iy] is convex in beta (a
log-sum-exp of affine functions), so a bounded scalar search (scipy's Brent-type ``bounded``
method) finds the global minimum on the interval; since T = 1 lies in the interval, the fitted
model never has a higher validation NLL than the original.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.registry import StrictParams
from models.posthoc.registry import register_posthoc


class TemperatureParams(StrictParams):
    min_temperature: float = Field(0.05, gt=0, description="lower end of the search interval")
    max_temperature: float = Field(20.0, gt=0, description="upper end of the search interval")
    batch_size: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _interval_contains_one(self) -> TemperatureParams:
        if not self.min_temperature <= 1.0 <= self.max_temperature:
            raise ValueError("the temperature interval must contain 1 (the unscaled model)")
        return self


class TemperatureScaled(nn.Module):
    """``model(x) / T``; same predictions (argmax), recalibrated confidences."""

    temperature: torch.Tensor  # buffer
    fit_info: dict[str, object]  # set by fit_temperature

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.randomized = bool(getattr(model, "randomized", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature.item():.4f}"


@torch.inference_mode()
def collect_logits(model: nn.Module, data: ArrayDataset, batch_size: int) -> np.ndarray:
    device = next(model.parameters()).device
    chunks = [
        model(data.x[start : start + batch_size].to(device)).double().cpu()
        for start in range(0, len(data), batch_size)
    ]
    return torch.cat(chunks).numpy()


def temperature_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean NLL of softmax(logits / T)."""
    from scipy.special import logsumexp

    scaled = logits / temperature
    return float(np.mean(logsumexp(scaled, axis=1) - scaled[np.arange(len(labels)), labels]))


def optimal_temperature(
    logits: np.ndarray, labels: np.ndarray, min_temperature: float, max_temperature: float
) -> float:
    """argmin_T NLL(logits / T) on [min_temperature, max_temperature] (convex in 1/T)."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda beta: temperature_nll(logits, labels, 1.0 / beta),
        bounds=(1.0 / max_temperature, 1.0 / min_temperature),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(1.0 / result.x)


def temperature_at_bound(
    temperature: float, params: TemperatureParams, rtol: float = 1e-4
) -> str | None:
    """'lower' or 'upper' when the fitted T sits at that end of [min_temperature,
    max_temperature], else None: a bounded search that stops there found the edge of its
    interval, not a minimum. Judged on beta = 1/T, the variable the search moves, within
    ``rtol`` of the beta interval's width."""
    beta, beta_low, beta_high = (
        1.0 / temperature,
        1.0 / params.max_temperature,
        1.0 / params.min_temperature,
    )
    width = beta_high - beta_low
    if beta - beta_low <= rtol * width:
        return "upper"  # the smallest beta is the largest T
    if beta_high - beta <= rtol * width:
        return "lower"
    return None


@register_posthoc(
    "temperature", "temperature scaling: logits / T, T minimising val NLL", TemperatureParams
)
def fit_temperature(
    model: nn.Module, val: ArrayDataset, params: TemperatureParams, seed: int
) -> TemperatureScaled:
    """Fit T on ``val`` and wrap ``model``; ``fit_info`` records T and the NLL before/after."""
    with torch.random.fork_rng():  # randomized models: one reproducible pass
        torch.manual_seed(seed)
        logits = collect_logits(model.eval(), val, params.batch_size)
    labels = val.y.numpy()
    temperature = optimal_temperature(
        logits, labels, params.min_temperature, params.max_temperature
    )
    scaled = TemperatureScaled(model, temperature)
    scaled.fit_info = {
        "method": "temperature",
        "temperature": temperature,
        "at_bound": temperature_at_bound(temperature, params),
        "val_nll_before": temperature_nll(logits, labels, 1.0),
        "val_nll_after": temperature_nll(logits, labels, temperature),
    }
    return scaled
