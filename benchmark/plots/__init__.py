"""Calibration and failure-prediction plots (PNG, rendered with Agg)."""

from benchmark.plots.confidence import confidence_histogram
from benchmark.plots.reliability import reliability_diagram
from benchmark.plots.risk_coverage import risk_coverage_plot
from benchmark.plots.suite import plot_suite

__all__ = ["confidence_histogram", "plot_suite", "reliability_diagram", "risk_coverage_plot"]
