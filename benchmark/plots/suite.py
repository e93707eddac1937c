"""All calibration and failure-prediction plots for one evaluation across models."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.evaluations.predictions import probabilities_from_records
from benchmark.plots.confidence import confidence_histogram
from benchmark.plots.figure import file_stem, save_png
from benchmark.plots.reliability import reliability_diagram
from benchmark.plots.risk_coverage import risk_coverage_plot


def plot_suite(
    records_by_model: dict[str, pd.DataFrame], out_dir: str | Path, n_bins: int = 15
) -> list[Path]:
    """Write ``reliability_<model>.png`` and ``confidence_<model>.png`` per model and one
    ``risk_coverage.png`` overlaying all models; return the paths written.

    Confidence and correctness are recomputed from the records' ``prob_<k>`` and ``label``
    columns, as in :func:`benchmark.evaluations.predictions.metrics_from_records`, so the plots
    show exactly what the metrics measure.
    """
    out_dir = Path(out_dir)
    inputs = {}
    for name, records in records_by_model.items():
        probs = probabilities_from_records(records)
        inputs[name] = (probs.max(axis=1), probs.argmax(axis=1) == records["label"].to_numpy())

    written: list[Path] = []
    stems: set[str] = set()
    for name, (confidences, correct) in inputs.items():
        stem = file_stem(name)
        while stem in stems:  # two names that sanitize alike must not overwrite each other
            stem += "_"
        stems.add(stem)
        written.append(
            save_png(
                reliability_diagram(confidences, correct, n_bins, title=name),
                out_dir / f"reliability_{stem}.png",
            )
        )
        written.append(
            save_png(
                confidence_histogram(confidences, correct, title=name),
                out_dir / f"confidence_{stem}.png",
            )
        )
    written.append(save_png(risk_coverage_plot(inputs), out_dir / "risk_coverage.png"))
    return written
