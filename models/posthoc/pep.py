"""PEP: Parameter Ensembling by Perturbation (Mehrtash et al., seeds/pep-parameter-ensembling-by-
perturbation.txt; reference code mehrtash/PEP).

Members are ``theta_j = theta* + eps_j``, ``eps_j ~ N(0, sigma^2 I)`` added to the selected
weights (Eq. 1), and the prediction averages the members' probabilities (an
:class:`~models.ensemble.Ensemble` of the m perturbed copies; the unperturbed model is not a
member). ``sigma`` is either given or chosen to maximise the validation log-likelihood of the
ensemble average (Sec. 2) by the reference's golden-section search.

Which weights (reference CIFAR-10 code: ``MNIST_CIFAR10/1_Table2/CIFAR CNN.ipynb`` and
``MNIST_CIFAR10/2_Overfitting/overfitting_cifar_cnn.py``, class ``PPE.perturb``): every Keras
kernel with ``len(shape) >= 2 and shape[-1] > 32``, i.e. the weights of convolutions *and* dense
layers with more than 32 output channels/units; smaller layers are left exactly as trained.
Biases and BatchNorm parameters and statistics (1-D there) are never touched. The defaults
follow that rule (``layers: conv_and_linear``, ``min_out: 33``); the other reference scripts
are ``min_out: 1`` (MNIST CNN: every kernel) and ``layers: conv, min_out: 1`` (ImageNet: every
4-D kernel, "all convolutional layers", Sec. 3.1). Only ``nn.Conv*d`` / ``nn.Linear`` weights
are candidates (the reference models have no other multi-dimensional parameters).

Search (reference ``golden_search``): bracket [0, 0.1], 10 iterations, m = 10 members during
the search and m = 25 at test. Each iteration takes the golden points ``s1 = lo + (hi - lo) phi``
and ``s2 = lo + (s1 - lo) phi`` of the current bracket, evaluates the one not known yet, and
keeps [s2, hi] if ``NLL(s1) < NLL(s2)``, else [lo, s1] (ties shrink towards small sigma). The
answer is the midpoint of the bracket the *last* iteration started from, so n iterations cost
n + 1 evaluations and shrink the returned bracket n - 1 times (the reference's published CIFAR
sigmas are such midpoints; its ImageNet runs use the same convention with 7 iterations).

Reproducibility: member j's standard-normal draw comes from ``torch.Generator`` seeded by
(seed, j) and is scaled by sigma, so every sigma in the search sees the same draws (common
random numbers, as the reference re-seeds 17..17+m for each sigma): the search objective is a
deterministic function of sigma, the search members are the first m of the test members, and
sigma = 0 gives members identical to the trained model.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.inference import predict_probs
from benchmark.metrics import negative_log_likelihood
from benchmark.registry import StrictParams
from benchmark.utils import derive_seed
from models.ensemble import Ensemble
from models.posthoc.registry import register_posthoc

PerturbedLayers = Literal["conv_and_linear", "conv", "linear"]
REFERENCE_MIN_OUT = 33  # the reference CIFAR-10 rule: shape[-1] > 32
LAYER_WORDS = {"conv_and_linear": "conv or linear", "conv": "conv", "linear": "linear"}


class PEPParams(StrictParams):
    sigma: float | None = Field(None, ge=0, description="fixed sigma; null = golden-section search")
    members: int = Field(25, ge=1, description="ensemble size m of the returned model")
    search_members: int = Field(10, ge=1, description="ensemble size during the search")
    bracket: tuple[float, float] = Field((0.0, 0.1), description="search interval for sigma")
    iterations: int = Field(10, ge=1, description="golden-section iterations (n + 1 evaluations)")
    layers: PerturbedLayers = Field(
        "conv_and_linear", description="which layer types have their weights perturbed"
    )
    min_out: int = Field(
        REFERENCE_MIN_OUT,
        ge=1,
        description="perturb only layers with at least this many output channels/features",
    )
    batch_size: int = Field(512, ge=1, description="validation batch size during the search")

    @model_validator(mode="after")
    def _ordered_bracket(self) -> PEPParams:
        low, high = self.bracket
        if not 0 <= low < high:
            raise ValueError(f"bracket must satisfy 0 <= low < high (got {self.bracket})")
        return self


def perturbed_parameter_names(
    model: nn.Module,
    min_out: int = REFERENCE_MIN_OUT,
    layers: PerturbedLayers = "conv_and_linear",
) -> list[str]:
    """Names of the weights PEP perturbs: conv/linear weights with >= ``min_out`` outputs."""
    names = []
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            kind, out = "conv", module.out_channels
        elif isinstance(module, nn.Linear):
            kind, out = "linear", module.out_features
        else:
            continue
        if layers != "conv_and_linear" and kind != layers:
            continue
        if out >= min_out and isinstance(module.weight, nn.Parameter):
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
    model: nn.Module,
    sigma: float,
    members: int,
    seed: int,
    min_out: int = REFERENCE_MIN_OUT,
    layers: PerturbedLayers = "conv_and_linear",
) -> Ensemble:
    """The PEP ensemble of ``members`` perturbed copies of ``model`` (in eval mode)."""
    names = perturbed_parameter_names(model, min_out, layers)
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
    """Minimise a unimodal ``objective`` on [low, high] as the reference ``golden_search`` does;
    return the midpoint of the bracket the last iteration started from, and every (x, f(x))
    evaluated (``iterations + 1`` of them).

    The interior point an iteration keeps is reused, not re-evaluated: the reference caches
    values by the exact float, so it sometimes evaluates the same point twice (after rounding)
    and spends up to a few more evaluations; the brackets and the answer are the same."""
    phi = (math.sqrt(5) - 1) / 2
    trace: list[tuple[float, float]] = []

    def evaluate(x: float) -> float:
        value = objective(x)
        trace.append((x, value))
        return value

    carried: tuple[int, float] | None = None  # (1 or 2: which golden point it is now, value)
    started = (low, high)
    for _ in range(iterations):
        started = (low, high)
        upper_point = low + (high - low) * phi  # the reference's sigma_1
        lower_point = low + (upper_point - low) * phi  # sigma_2
        f_upper = carried[1] if carried and carried[0] == 1 else evaluate(upper_point)
        f_lower = carried[1] if carried and carried[0] == 2 else evaluate(lower_point)
        if f_upper < f_lower:  # the larger sigma is better: keep [sigma_2, high]
            low, carried = lower_point, (2, f_upper)
        else:  # keep [low, sigma_1]; ties go to the smaller sigma
            high, carried = upper_point, (1, f_lower)
    return (started[0] + started[1]) / 2, trace


def search_sigma(
    model: nn.Module, val: ArrayDataset, params: PEPParams, seed: int
) -> tuple[float, list[tuple[float, float]]]:
    """Golden-section search for the sigma maximising the ensemble's validation likelihood."""

    def objective(sigma: float) -> float:
        ensemble = pep_ensemble(
            model, sigma, params.search_members, seed, params.min_out, params.layers
        )
        return validation_nll(ensemble, val, params.batch_size)

    return golden_section_search(objective, *params.bracket, params.iterations)


def bracket_end(sigma: float, params: PEPParams) -> str | None:
    """'lower' or 'upper' when the searched ``sigma`` came from a final bracket that still
    touches that end of ``params.bracket`` (every iteration kept that side), else None.

    :func:`golden_section_search` returns the midpoint of the bracket its last iteration
    started from, whose width is the initial one times phi^(iterations - 1)."""
    low, high = params.bracket
    half = (high - low) * ((math.sqrt(5) - 1) / 2) ** (params.iterations - 1) / 2
    tolerance = 1e-9 * (high - low)
    if abs(sigma - half - low) <= tolerance:
        return "lower"
    if abs(sigma + half - high) <= tolerance:
        return "upper"
    return None


@register_posthoc("pep", "parameter ensembling by perturbation (Gaussian weight noise)", PEPParams)
def fit_pep(model: nn.Module, val: ArrayDataset, params: PEPParams, seed: int) -> Ensemble:
    """Choose sigma (unless given) and return the m-member PEP ensemble.

    The result's ``fit_info`` holds sigma, the search trace [(sigma, validation NLL)] and the
    names of the perturbed weights. A search on a model with no weight to perturb is an error
    (its objective is flat); a fixed sigma there only warns (the members equal the model).
    """
    names = perturbed_parameter_names(model, params.min_out, params.layers)
    if not names:
        problem = (
            f"PEP perturbs no weights of this model: no {LAYER_WORDS[params.layers]} "
            f"layer has at least {params.min_out} outputs (min_out)"
        )
        if params.sigma is None:
            raise BenchmarkError(f"post-hoc 'pep': {problem}; lower min_out or change layers")
        if params.sigma > 0:
            warnings.warn(f"{problem}: every member equals the model", stacklevel=2)
    with torch.random.fork_rng():  # randomized base models: reproducible search passes
        torch.manual_seed(seed)
        trace: list[tuple[float, float]] = []
        sigma = params.sigma
        if sigma is None:
            sigma, trace = search_sigma(model, val, params, seed)
    ensemble = pep_ensemble(model, sigma, params.members, seed, params.min_out, params.layers)
    at_bound = None if params.sigma is not None else bracket_end(sigma, params)
    ensemble.fit_info = {
        "method": "pep",
        "sigma": sigma,
        "search": trace,
        "perturbed": names,
        "at_bound": at_bound,
    }
    return ensemble
