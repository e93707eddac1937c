"""Names and explanations of every trust flag, in one place.

A flag is only useful if a reader of the leaderboard can tell what it means without reading
code; so every flag that can appear in the ``flags`` column is registered here with a
one-paragraph explanation, which the ``check`` command and the HTML report print next to the
numbers behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FLAG_EXPLANATIONS: dict[str, str] = {}


def register_flag(name: str, explanation: str) -> str:
    """Declare flag ``name`` with the text shown to readers; returns the name."""
    if FLAG_EXPLANATIONS.get(name, explanation) != explanation:
        raise ValueError(f"flag '{name}' is already registered with another explanation")
    FLAG_EXPLANATIONS[name] = explanation
    return name


def explain(flag: str) -> str:
    return FLAG_EXPLANATIONS.get(flag, "no explanation registered for this flag")


@dataclass(frozen=True)
class Finding:
    """One raised flag: which model, which flag, from which evaluation(s), and the numbers."""

    model: str
    flag: str
    source: str
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def explanation(self) -> str:
        return explain(self.flag)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "flag": self.flag,
            "source": self.source,
            "numbers": self.numbers,
            "explanation": self.explanation,
        }


register_flag(
    "state_changed",
    "Weights or BatchNorm statistics changed while the model was being evaluated (e.g. a "
    "forward pass in train mode inside an attack). The numbers of that evaluation were "
    "computed on a moving model; the runner restored the weights for the next job.",
)
