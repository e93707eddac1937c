"""The post-hoc method registry: methods that turn a trained model plus a validation split into
a new model (PEP, temperature scaling; later e.g. FMFP's calibration variants).

Every method is ``fit(model, val_data, params, seed) -> nn.Module`` with a pydantic parameter
model, so a suite runner can validate a ``posthoc:`` section up front and then call
:func:`fit_posthoc` uniformly. The returned module keeps the model contract ([0, 1] input,
logits out) and the ``randomized`` flag of the model it wraps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.registry import Entry, Registry, StrictParams, format_validation_error
from models.posthoc.diagnostics import degenerate_fit, fitting_data_problem, leakage_report

Fit = Callable[[nn.Module, ArrayDataset, Any, int], nn.Module]
POSTHOC: Registry[Fit] = Registry("post-hoc method")


def register_posthoc(
    key: str, description: str, params: type[StrictParams]
) -> Callable[[Fit], Fit]:
    def decorator(fit: Fit) -> Fit:
        POSTHOC.add(Entry(key, fit, description, params))
        return fit

    return decorator


def fit_posthoc(
    method: str,
    model: nn.Module,
    val_data: ArrayDataset,
    params: dict[str, Any] | StrictParams | None = None,
    seed: int = 0,
    *,
    row: str | None = None,
    evaluation: ArrayDataset | None = None,
    fitting_name: str = "",
) -> nn.Module:
    """Fit post-hoc ``method`` on ``val_data`` and return the wrapped model (in eval mode).

    With ``row`` the fit is checked (:mod:`models.posthoc.diagnostics`): fitting data without
    errors, or (given the ``evaluation`` data) seen in training, and a fit that ends at an
    edge of its interval are refused in one line naming the row; the fitted model's
    ``fit_info`` then also holds the leakage numbers."""
    entry = POSTHOC.get(method)
    try:
        validated = entry.params_model.model_validate(
            params.model_dump() if isinstance(params, StrictParams) else (params or {})
        )
    except ValidationError as exc:
        problems = "; ".join(format_validation_error(exc))
        raise BenchmarkError(f"post-hoc '{method}': {problems}") from None
    report = None
    if row is not None:
        report = leakage_report(model, val_data, evaluation or val_data, seed)
        if (problem := fitting_data_problem(report, fitting_name)) is not None:
            raise BenchmarkError(f"model '{row}': post-hoc '{method}' refused: {problem}")
    fitted = entry.obj(model.eval(), val_data, validated, seed).eval()
    info: dict[str, Any] = getattr(fitted, "fit_info", {})
    if row is not None and (reason := degenerate_fit(info)) is not None:
        raise BenchmarkError(f"model '{row}': post-hoc '{method}' refused: {reason}")
    if report is not None:
        info["fitting_data"] = {"name": fitting_name or "given", **report.__dict__}
    return fitted
