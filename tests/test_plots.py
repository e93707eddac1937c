"""plot_suite writes one reliability diagram and one confidence histogram per model plus one
overlaid risk-coverage plot, as real PNG files, without touching pyplot's global state."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from benchmark.plots import plot_suite

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def records(seed: int, n: int, k: int = 10, all_correct: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = probs.argmax(1) if all_correct else rng.integers(0, k, n)
    frame = pd.DataFrame({"label": labels})
    for c in range(k):
        frame[f"prob_{c}"] = probs[:, c]
    return frame


def test_plot_suite_writes_nonempty_pngs(tmp_path):
    models = {
        "resnet20 w0.5": records(0, 400),
        "resnet20/w0.5": records(1, 300),  # sanitizes to the same stem: must not overwrite
        "perfect": records(2, 50, all_correct=True),  # AUROC undefined: still plots
    }
    paths = plot_suite(models, tmp_path / "plots")
    assert len(paths) == 2 * len(models) + 1 == len(set(paths))
    assert {p.name for p in paths} >= {"risk_coverage.png", "reliability_perfect.png"}
    for path in paths:
        assert path.parent == tmp_path / "plots"
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, path
    assert not list((tmp_path / "plots").glob(".*")), "temporary files left behind"
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or not plt.get_fignums(), "figures leaked into pyplot"
