"""Common corruptions with the CIFAR-10-C severity parameters, for any image set.

Families: :mod:`noise`, :mod:`blur`, :mod:`weather`, :mod:`digital` (formulas from Hendrycks
& Dietterich's ``make_cifar_c.py``, constants in :mod:`params`); shared batched operators in
:mod:`kernels` and :mod:`color`; :func:`corrupt` and the name table in :mod:`registry`; the
on-disk cache of generated sets in :mod:`cache`; summary scores (mCE, mCNLL, mCECE) in
:mod:`scores`; plots in :mod:`plots`.
"""

from benchmark.corruptions.registry import (
    CORRUPTIONS,
    EXTRA,
    SEVERITIES,
    STANDARD,
    corrupt,
    default_length_scale,
    resolve_corruptions,
)

__all__ = [
    "CORRUPTIONS",
    "EXTRA",
    "SEVERITIES",
    "STANDARD",
    "corrupt",
    "default_length_scale",
    "resolve_corruptions",
]
