"""Checks that a post-hoc fit means something before its row reaches a leaderboard.

Two ways a fit goes wrong without any error:

* **The fitting data was seen in training.** Public checkpoints are trained on every training
  image, so a ``val`` split carved from them is memorised (ResNet-20: 99.8 % accuracy there vs
  91.7 % on test). Temperature scaling then *sharpens* (T < 1) and PEP picks sigma for a model
  that never errs, and the row is worse than the model it calibrates. :func:`leakage_report`
  compares the model's accuracy on the fitting data with the evaluation data *before* fitting:
  a one-sided Fisher exact test that the fitting data has fewer errors, refused at
  ``p < LEAKAGE_P`` and an error rate below half the evaluation's. Held-out data (the same
  distribution, never trained on) passes, up to sampling noise.
* **The fit is degenerate.** A fitting set without a single error has nothing to calibrate
  against (the NLL-optimal temperature runs to the smallest allowed value: logits x 20, a
  saturated softmax that the gradient-masking checks then flag), and a temperature or PEP
  sigma at an end of its search interval is not a minimum but the interval's edge. Each
  method records ``fit_info["at_bound"]``; :func:`degenerate_fit` turns it into a reason.

Both are refused in one line that names the row and the fix; neither is ever served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import fisher_exact
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.inference import predict_probs
from benchmark.metrics import negative_log_likelihood

# Refuse a fit when the fitting data has significantly fewer errors than the evaluation data
# (one-sided Fisher exact p below this) *and* at most half their error rate: the first keeps
# sampling noise (a lucky 0 errors in 180 digits against 3 in 360, p = 0.4) from firing,
# the second keeps a large fitting set with a slightly lower error rate from firing.
LEAKAGE_P = 1e-3


@dataclass(frozen=True)
class LeakageReport:
    """The model's accuracy and NLL on the fitting data against the evaluation data."""

    fit_n: int
    fit_errors: int
    fit_nll: float
    eval_n: int
    eval_errors: int
    eval_nll: float
    p_value: float  # one-sided Fisher exact: the fitting data has fewer errors

    @property
    def fit_acc_pct(self) -> float:
        return 100.0 * (1 - self.fit_errors / self.fit_n)

    @property
    def eval_acc_pct(self) -> float:
        return 100.0 * (1 - self.eval_errors / self.eval_n)

    @property
    def leaked(self) -> bool:
        fit_rate, eval_rate = self.fit_errors / self.fit_n, self.eval_errors / self.eval_n
        return self.p_value < LEAKAGE_P and fit_rate <= eval_rate / 2

    def describe(self) -> str:
        return (
            f"accuracy {self.fit_acc_pct:.2f} % on it vs {self.eval_acc_pct:.2f} % on the "
            f"evaluation data, NLL {self.fit_nll:.3f} vs {self.eval_nll:.3f} "
            f"(Fisher p = {self.p_value:.1e})"
        )


def _errors_and_nll(
    model: nn.Module, data: ArrayDataset, device: torch.device, batch_size: int
) -> tuple[int, float]:
    probs = predict_probs(model, data.x, batch_size=batch_size, device=device)
    labels = data.y.numpy()
    return int((probs.argmax(1) != labels).sum()), negative_log_likelihood(probs, labels)


def leakage_report(
    model: nn.Module,
    fitting: ArrayDataset,
    evaluation: ArrayDataset,
    seed: int,
    batch_size: int = 512,
) -> LeakageReport:
    """One prediction pass over each set (seeded: randomized models give one draw)."""
    device = next(model.parameters()).device
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fit_errors, fit_nll = _errors_and_nll(model.eval(), fitting, device, batch_size)
        eval_errors, eval_nll = _errors_and_nll(model.eval(), evaluation, device, batch_size)
    table = np.array(
        [[fit_errors, len(fitting) - fit_errors], [eval_errors, len(evaluation) - eval_errors]]
    )
    _, p_value = fisher_exact(table, alternative="less")
    return LeakageReport(
        len(fitting), fit_errors, fit_nll, len(evaluation), eval_errors, eval_nll, float(p_value)
    )


def fitting_data_problem(report: LeakageReport, fitting_name: str = "") -> str | None:
    """Why the fitting data cannot serve (None when it can); ``fitting_name`` says which
    data it is in the message (e.g. "'val' split (5000 images)")."""
    which = f" ({fitting_name})" if fitting_name else ""
    # leakage first: a memorised fitting set often has no errors at all, and "seen in
    # training" is the reason and the fix, where "no errors" is only the symptom
    if report.leaked:
        return (
            f"the fitting data{which} looks seen in training: {report.describe()}; "
            "fit on images the checkpoint cannot have seen: dataset: {holdout: N} with "
            "fit_on: holdout"
        )
    if report.fit_errors == 0:
        return (
            f"the model makes no errors on the fitting data{which}, so there is "
            "nothing to calibrate against; fit on a larger or held-out set "
            "(dataset: {holdout: N}, fit_on: holdout)"
        )
    return None


def degenerate_fit(fit_info: dict[str, object]) -> str | None:
    """The reason a fitted row is degenerate (its parameter at an end of its interval)."""
    bound = fit_info.get("at_bound")
    if not bound:
        return None
    method = fit_info.get("method")
    if method == "temperature":
        return (
            f"the fitted temperature {fit_info['temperature']:.4g} is at the {bound} end of "
            "its search interval (min_temperature/max_temperature): not a minimum of the NLL"
        )
    if method == "pep":
        return (
            f"the fitted sigma {fit_info['sigma']:.4g} is at the {bound} end of the search "
            "bracket: not a maximum of the likelihood (widen 'bracket', or the model gains "
            "nothing from PEP on this data)"
        )
    return f"the fit ended at the {bound} end of its search interval"
