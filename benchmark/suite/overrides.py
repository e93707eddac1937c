"""``--set dotted.field=value``: change any suite field from the command line.

Why: one suite file should run unchanged on a laptop, on CI and on a cluster, which differ in
data folders, devices and subset sizes. Overrides edit the parsed YAML document *before*
validation, so an overridden suite is checked exactly like a file, and a bad value is
reported with its field path like any other.

Syntax: ``dataset.root=../shared/data``, ``models[0].params.width=0.5`` (or
``models.0.params.width=0.5``), ``evaluations[2].params.eps=[0.1,0.2]``. The value is read as
YAML (``safe_load``): ``true``, ``8``, ``0.5``, ``[1, 2]`` and ``{a: 1}`` keep their types,
anything else is a string. Missing mapping keys are created; list indices must exist.
"""

from __future__ import annotations

import re
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.suite.safe_yaml import YamlProblem, load_bounded

MAX_VALUE_CHARS = 100_000

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class OverrideError(BenchmarkError):
    """A malformed ``--set`` (syntax, or a path that does not fit the document)."""


def parse_path(dotted: str, override: str) -> list[str | int]:
    """``models[0].params.width`` -> ``["models", 0, "params", "width"]``."""
    parts: list[str | int] = []
    position = 0
    for match in _SEGMENT.finditer(dotted):
        between = dotted[position : match.start()]
        if between not in ("", "."):
            raise OverrideError(f"--set {override}: cannot parse field path '{dotted}'")
        name, index = match.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(int(name) if name.isdigit() else name)
        position = match.end()
    if position != len(dotted) or not parts or dotted.startswith((".", "[")):
        raise OverrideError(f"--set {override}: cannot parse field path '{dotted}'")
    return parts


def parse_value(text: str, override: str) -> Any:
    """The value as YAML, with the bounds of a suite file (:mod:`benchmark.suite.safe_yaml`):
    a self-referencing alias, an alias bomb or deep nesting is one line, not a hang."""
    if len(text) > MAX_VALUE_CHARS:
        raise OverrideError(
            f"--set {override[:60]}...: value longer than {MAX_VALUE_CHARS} characters"
        )
    try:
        return load_bounded(text) if text.strip() else text
    except YamlProblem as exc:
        raise OverrideError(f"--set {override[:80]}: value: {exc}") from None


def apply_override(document: dict[str, Any], override: str) -> None:
    """Apply one ``field.path=value`` to ``document`` in place."""
    field, sep, text = override.partition("=")
    if not sep or not field.strip():
        raise OverrideError(f"--set {override}: expected FIELD=VALUE, e.g. dataset.root=data")
    path = parse_path(field.strip(), override)
    value = parse_value(text, override)
    node: Any = document
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = _format(path[:depth]) or "the suite"
        if isinstance(part, int):
            if not isinstance(node, list):
                raise OverrideError(f"--set {override}: {where} is not a list")
            if part >= len(node):
                raise OverrideError(
                    f"--set {override}: {where} has {len(node)} item(s), no index {part}"
                )
        elif not isinstance(node, dict):
            raise OverrideError(f"--set {override}: {where} is not a mapping")
        if last:
            node[part] = value
        else:
            if isinstance(part, str) and node.get(part) is None:
                node[part] = [] if isinstance(path[depth + 1], int) else {}
            node = node[part]


def _format(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
