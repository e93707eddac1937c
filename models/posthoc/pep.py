"""PEP: Parameter Ensembling by Perturbation (Mehrtash et al., seeds/pep-parameter-ensembling-by-
perturbation.txt; reference code mehrtash/PEP).

Members are ``theta_j = theta* + eps_j``, ``eps_j ~ N(0, sigma^2 I)`` (Eq. 1), and the
prediction averages their probabilities (an :class:`~models.ensemble.Ensemble`). ``sigma`` is
either given or chosen to maximise the validation log-likelihood of the ensemble average
(Sec. 2), by golden-section search; for CIFAR/MNIST-like data the paper and SPECS use the
bracket [0, 0.1], 10 iterations, m = 10 members during the search and m = 25 at test.

Which parameters (from the reference code): the weights of convolutions ("Gaussian
perturbations were added to the weights of all convolutional layers", Sec. 3.1) and of dense
layers with more than 32 outputs (the MNIST/CIFAR scripts perturb Keras kernels with
``len(shape) >= 2 and shape[-1] > 32``). Biases and BatchNorm parameters/statistics (1-D
tensors there) are never touched.

Reproducibility: member j's standard-normal draw comes from ``torch.Generator`` seeded by
(seed, j) and is scaled by sigma, so every sigma in the search sees the same draws (common
random numbers, as the reference re-seeds 17..17+m for each sigma): the search objective is a
deterministic function of sigma, the search members are the first m of the test members, and
sigma = 0 gives members identical to the trained model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from pydantic import Field, model_validator
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.inference import predict_probs
from benchmark.metrics import negative_log_likelihood
from benchmark.registry import StrictParams
from benchmark.utils import derive_seed
from models.ensemble import Ensemble
from models.posthoc.registry import register_posthoc


class PEPParams(StrictParams):
    sigma: float | None = Field(None, ge=0, description="fixed sigma; null = golden-section search")
    members: int = Field(25, ge=1, description="ensemble size m of the returned model")
    search_members: int = Field(10, ge=1, description="ensemble size during the search")
    bracket: tuple[float, float] = Field((0.0, 0.1), description="search interval for sigma")
    iterations: int = Field(10, ge=1, description="golden-section iterations")
    dense_min_out_features: int = Field(
        33, ge=1, description="perturb Linear weights with at least this many outputs"
    )
    batch_size: int = Field(512, ge=1, description="validation batch size during the search")

    @model_validator(mode="after")
    def _ordered_bracket(self) -> PEPParams:
        low, high = self.bracket
        if not 0 <= low < high:
            raise ValueError(f"bracket must satisfy 0 <= low < high (got {self.bracket})")
        return self


def perturbed_parameter_names(model: nn.Module, dense_min_out_features: int = 33) -> list[str]:
    """Names of the weights PEP perturbs: every convolution, and large Linear layers."""
    names = []
    for prefix, module in model.named_modules():
        is_conv = isinstance(module, nn.modules.conv._ConvNd)
        is_large_dense = isinstance(module, nn.Linear) and (
            module.out_features >= dense_min_out_features
        )
        if is_conv or is_large_dense:
            names.append(f"{prefix}.weight" if prefix else "weight")
    return names


def perturbed_copy(model: nn.Module, sigma: float, seed: int, names: list[str]) -> nn.Module:
    """A copy of ``model`` with ``sigma * N(0, I)`` (drawn from ``seed``) added to ``names``."""
    member = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    parameters = dict(member.named_parameters())
    with torch.no_grad():
        for name in names:
            weight = parameters[name]
            draw = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
            weight.add_(draw.to(weight.device), alpha=sigma)
    return member


def pep_ensemble(
    model: nn.Module, sigma: float, members: int, seed: int, dense_min_out_features: int = 33
) -> Ensemble:
    """The PEP ensemble of ``members`` perturbed copies of ``model`` (in eval mode)."""
    names = perturbed_parameter_names(model, dense_min_out_features)
    copies = [
        perturbed_copy(model, sigma, derive_seed(seed, "pep-member", j), names).eval()
        for j in range(members)
    ]
    ensemble = Ensemble(copies).eval()
    ensemble.sigma = sigma
    return ensemble


def validation_nll(model: nn.Module, data: ArrayDataset, batch_size: int = 512) -> float:
    """Mean validation NLL of ``model``'s softmax (one pass)."""
    device = next(model.parameters()).device
    probs = predict_probs(model.eval(), data.x, batch_size=batch_size, device=device)
    return negative_log_likelihood(probs, data.y.numpy())


def golden_section_search(
    objective: Callable[[float], float], low: float, high: float, iterations: int
) -> tuple[float, list[tuple[float, float]]]:
    """Minimise a unimodal ``objective`` on [low, high]; return the midpoint of the final
    bracket and every (x, f(x)) evaluated. Each iteration shrinks the bracket by 1/phi and
    costs one evaluation (the other interior point is reused)."""
    inv_phi = (math.sqrt(5) - 1) / 2
    trace: list[tuple[float, float]] = []

    def evaluate(x: float) -> float:
        value = objective(x)
        trace.append((x, value))
        return value

    left, right = high - inv_phi * (high - low), low + inv_phi * (high - low)
    f_left, f_right = evaluate(left), evaluate(right)
    for _ in range(iterations):
        if f_left < f_right:  # the minimum lies in [low, right]
            high, right, f_right = right, left, f_left
            left = high - inv_phi * (high - low)
            f_left = evaluate(left)
        else:  # the minimum lies in [left, high]
            low, left, f_left = left, right, f_right
            right = low + inv_phi * (high - low)
            f_right = evaluate(right)
    return (low + high) / 2, trace


def search_sigma(
    model: nn.Module, val: ArrayDataset, params: PEPParams, seed: int
) -> tuple[float, list[tuple[float, float]]]:
    """Golden-section search for the sigma maximising the ensemble's validation likelihood."""

    def objective(sigma: float) -> float:
        ensemble = pep_ensemble(
            model, sigma, params.search_members, seed, params.dense_min_out_features
        )
        return validation_nll(ensemble, val, params.batch_size)

    return golden_section_search(objective, *params.bracket, params.iterations)


@register_posthoc("pep", "parameter ensembling by perturbation (Gaussian weight noise)", PEPParams)
def fit_pep(model: nn.Module, val: ArrayDataset, params: PEPParams, seed: int) -> Ensemble:
    """Choose sigma (unless given) and return the m-member PEP ensemble.

    The result's ``fit_info`` holds sigma and the search trace [(sigma, validation NLL)].
    """
    with torch.random.fork_rng():  # randomized base models: reproducible search passes
        torch.manual_seed(seed)
        trace: list[tuple[float, float]] = []
        sigma = params.sigma
        if sigma is None:
            sigma, trace = search_sigma(model, val, params, seed)
    ensemble = pep_ensemble(model, sigma, params.members, seed, params.dense_min_out_features)
    ensemble.fit_info = {"method": "pep", "sigma": sigma, "search": trace}
    return ensemble
