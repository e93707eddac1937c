"""Adversarial attacks (search only) and threat models; importing registers the built-ins."""

from benchmark.attacks import library, pgd
from benchmark.attacks.base import ATTACKS, Attack, AttackContext, register_attack
from benchmark.attacks.threat import EpsField, Norm, parse_eps, perturbation_norm, valid_adversarial

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackContext",
    "EpsField",
    "Norm",
    "library",
    "parse_eps",
    "perturbation_norm",
    "pgd",
    "register_attack",
    "valid_adversarial",
]
