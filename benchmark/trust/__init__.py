"""Evaluation you can trust: named flags for setups and results that make robust accuracy
meaningless (gradient masking, broken attacks, randomness without EOT, moving weights).

Per-model checks run as the ``sanity`` evaluation; checks that need several evaluations at
once (PGD vs AutoAttack, Square vs PGD, accuracy vs eps) live in :mod:`benchmark.trust.checks`
and run whenever the leaderboard is collected. Import :mod:`benchmark.trust.checks`
explicitly: this package itself only holds the flag registry, so that evaluations can
declare their flags without import cycles.
"""

from benchmark.trust.flags import FLAG_EXPLANATIONS, Finding, explain, register_flag

__all__ = ["FLAG_EXPLANATIONS", "Finding", "explain", "register_flag"]
