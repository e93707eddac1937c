"""Robustness benchmarking harness: YAML suites, registered models, cached evaluations.

Importing this package is cheap on purpose: the CLI imports heavy modules (torch, pandas) only
for the sub-command that needs them.
"""

__version__ = "0.1.0"
