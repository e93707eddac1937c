"""The HTML report: ``leaderboard/<suite>.html``, one self-contained page (no network).

A sortable leaderboard (95% intervals next to each metric, trust flags in their own column),
every raised flag with its explanation and numbers, and one section per model with its
plots: reliability diagrams, robust accuracy vs eps, corruption severity curves and
robustness-ranking bins. Rendered with Jinja2 from ``template.html.j2`` (package data);
images are inlined as base64 data URIs and sorting is a few lines of vanilla JavaScript.
"""

from benchmark.report.build import build_report, render_report

__all__ = ["build_report", "render_report"]
