"""HTML report: written next to the CSV, self-contained, flags explained; in headless
Chromium it loads without console errors or network requests, sorting by a column reorders
the rows, and a screenshot is produced."""

from __future__ import annotations

import base64
import re

import pytest

from benchmark.evaluations import EvaluationResult, register_evaluation
from benchmark.evaluations.clean import CleanEvaluation
from tests.cdp import Browser, find_browser, install_browser


@register_evaluation("test_report_bn_leak", "deliberately broken: forwards in train mode")
class _BatchNormLeak(CleanEvaluation):
    """A clean evaluation that first runs one train-mode pass (moves BatchNorm statistics)."""

    def run(self, model, data, ctx) -> EvaluationResult:
        model.train()
        model(data.x[:32].to(ctx.device))
        return super().run(model.eval(), data, ctx)


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    import yaml

    from benchmark.runner import run_suite
    from benchmark.suite import load_suite
    from tests.conftest import tiny_suite

    tmp = tmp_path_factory.mktemp("report")
    suite = tiny_suite(tmp, sanity=False)
    suite["models"].append(
        {"name": "cnn_wide", "model": "small_cnn", "params": {"width": 0.5}, "random_init": True}
    )
    suite["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 50}},
        {"type": "test_report_bn_leak"},  # raises state_changed on every row
        {"type": "eps_sweep", "params": {"eps": [0.05, 0.1, 0.2], "attack": {"type": "fgsm"}}},
        {"type": "ood_detection", "name": "ood", "params": {"dataset": "digits", "split": "val"}},
    ]
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)
    summary = run_suite(loaded, progress=False, log=lambda _m: None)
    return loaded, summary, tmp / "leaderboard" / "tiny.html"


def test_report_is_written_self_contained_with_flags_explained(report_run):
    _, summary, path = report_run
    assert path in summary.written
    html = path.read_text()
    assert "<table" in html and 'id="leaderboard"' in html
    # no network: every image is inline, no script or stylesheet is fetched
    assert not re.search(r'(src|href)="(https?:)?//', html)
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert "state_changed" in html and "BatchNorm statistics changed" in html
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", html)
    assert "clean: reliability diagram" in captions
    # figures an evaluation declares (report_figures) replace the reliability diagram
    assert captions.count("ood: entropy in vs out of distribution") == len(summary.leaderboard)
    assert "ood: reliability diagram" not in captions
    assert "fgsm_sweep_linf: robust accuracy vs eps" in captions  # the suite-wide plot
    assert captions.count("robust accuracy vs eps") == len(summary.leaderboard)  # per model
    for model in summary.leaderboard["model"]:
        assert f'id="model-{model.replace("_", "-")}"' in html
    # the interval is shown next to its metric
    assert re.search(r"\d \[\d[\d.]*, \d[\d.]*\]", html)


def _browser() -> str:
    executable = find_browser()
    if executable is None:
        reason = install_browser()
        executable = find_browser()
        if executable is None:
            pytest.skip(f"no headless Chromium available and it could not be installed: {reason}")
    return executable


def test_report_in_headless_chromium(report_run, tmp_path):
    _, summary, path = report_run
    browser = Browser(_browser(), tmp_path / "profile")
    try:
        browser.open(path.resolve().as_uri())
        rows = "Array.from(document.querySelectorAll('#leaderboard tbody tr'))"
        models = f"{rows}.map(r => r.cells[0].textContent.trim())"
        assert browser.evaluate(models) == list(summary.leaderboard["model"])

        column = "clean_acc_pct"
        header = f"document.querySelector('th[data-column=\"{column}\"]')"
        index = browser.evaluate(f"Array.from({header}.parentNode.children).indexOf({header})")
        values = f"{rows}.map(r => parseFloat(r.cells[{index}].getAttribute('data-value')))"
        browser.evaluate(f"{header}.click()")  # first click: best first (accuracy: descending)
        shown = browser.evaluate(values)
        assert shown == sorted(shown, reverse=True)
        expected = summary.leaderboard.sort_values(column, ascending=False, kind="stable")
        assert browser.evaluate(models) == list(expected["model"])
        assert browser.evaluate(f"{header}.getAttribute('aria-sort')") == "descending"
        browser.evaluate(f"{header}.click()")
        assert browser.evaluate(values) == sorted(shown)
        name_header = "document.querySelector('th[data-column=\"model\"]')"
        browser.evaluate(f"{name_header}.click()")
        assert browser.evaluate(models) == sorted(summary.leaderboard["model"])

        png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"})["data"])
        screenshot = tmp_path / "report.png"
        screenshot.write_bytes(png)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000

        assert browser.errors() == []
        external = [u for u in browser.requested_urls() if not u.startswith(("file:", "data:"))]
        assert external == []
    finally:
        browser.close()


def test_clean_vs_robust_scatter_per_threat_model():
    """RobustBench's figure: one point per row with a headline number, flagged rows hollow,
    rows without the number left out; one figure per headline threat model."""
    import math

    import pandas as pd

    from benchmark.plots.robustness_scatter import robustness_scatter, threat_prefixes
    from benchmark.report.build import scatter_figures

    frame = pd.DataFrame(
        {
            "model": ["robust", "masked", "clean_only"],
            "flags": ["", "degenerate_gradients", ""],
            "linf_8/255_robust_acc_pct": [40.0, 80.0, math.nan],
            "linf_8/255_robust_acc_pct_ci_low": [30.0, 70.0, math.nan],
            "linf_8/255_robust_acc_pct_ci_high": [50.0, 88.0, math.nan],
            "linf_8/255_subset_clean_acc_pct": [70.0, 85.0, math.nan],
            "clean_acc_pct": [71.0, 86.0, 90.0],
        }
    )
    assert threat_prefixes(frame) == ["linf_8/255"]
    figure = robustness_scatter(frame, "linf_8/255")
    assert figure is not None
    (ax,) = figure.axes
    assert len(ax.containers) == 2  # two rows with numbers; the third has none
    labels = [text.get_text() for text in ax.texts]
    assert labels == ["robust", "masked (flagged)"]
    faces = [container.lines[0].get_markerfacecolor() for container in ax.containers]
    assert faces[1] == "none" and faces[0] != "none"
    (drawn,) = scatter_figures(frame)
    assert drawn.title == "linf_8/255: clean vs robust accuracy"
    assert drawn.uri.startswith("data:image/png;base64,")
    assert robustness_scatter(frame.iloc[2:], "linf_8/255") is None
