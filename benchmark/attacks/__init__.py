"""Adversarial attacks (search only) and threat models; importing registers the built-ins:
fixed-eps (PGD, FGSM, Square, AutoAttack, HopSkipJump, transfer, BPDA, torchattacks) and
minimal-norm (CW, DDN, FMN)."""

from benchmark.attacks import bpda, library, minimal, pgd, transfer
from benchmark.attacks.base import (
    ATTACKS,
    Attack,
    AttackBase,
    AttackContext,
    AttackFamily,
    MinimalNormAttack,
    attack_entry,
    attack_keys,
    register_attack,
)
from benchmark.attacks.threat import EpsField, Norm, parse_eps, perturbation_norm, valid_adversarial

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackBase",
    "AttackContext",
    "AttackFamily",
    "EpsField",
    "MinimalNormAttack",
    "Norm",
    "attack_entry",
    "attack_keys",
    "bpda",
    "library",
    "minimal",
    "parse_eps",
    "perturbation_norm",
    "pgd",
    "register_attack",
    "transfer",
    "valid_adversarial",
]
