"""YAML text read with bounds: safe loading plus the checks that make hostile input a one-line
error instead of a traceback or a hang.

``yaml.safe_load`` executes no code, but it happily builds a list that contains itself
(``&a [*a]``), nests 10,000 levels deep, or shares one node a billion times through aliases
("billion laughs"): validation then recurses forever or walks an exponential tree. Every
document -- a suite file and each ``--set`` value -- is composed first and checked here:
no alias that refers to itself, at most :data:`MAX_NODES` nodes with every alias expanded,
nesting the parser can handle, and no mapping key given twice (YAML keeps only the last).
"""

from __future__ import annotations

from typing import Any

import yaml

# Far above any real suite (the mission suite has a few thousand nodes), far below what makes
# validation slow.
MAX_NODES = 100_000


class YamlProblem(ValueError):
    """Why a YAML text is refused (one line, without the file name)."""


def _duplicate_key(node: yaml.Node | None, seen: set[int]) -> tuple[str, int] | None:
    """The first mapping key given twice (and its line): YAML silently keeps the last one, so
    ``eps: 8/255`` overridden by a forgotten ``eps: 0.5`` further down would go unnoticed."""
    if node is None or id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in keys:
                    return key_node.value, key_node.start_mark.line + 1
                keys.add(key_node.value)
            if (found := _duplicate_key(value_node, seen)) is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if (found := _duplicate_key(item, seen)) is not None:
                return found
    return None


def _expanded_nodes(node: yaml.Node | None, memo: dict[int, int], open_: set[int]) -> int:
    """Number of nodes with every alias expanded (memoized per node); a node reached again
    while it is still being counted is an alias to one of its own ancestors."""
    if node is None:
        return 0
    key = id(node)
    if key in open_:
        line = node.start_mark.line + 1
        raise YamlProblem(f"line {line}: an alias refers to a node that contains it (&a [*a])")
    if key not in memo:
        open_.add(key)
        if isinstance(node, yaml.SequenceNode):
            memo[key] = 1 + sum(_expanded_nodes(child, memo, open_) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] = 1 + sum(
                _expanded_nodes(k, memo, open_) + _expanded_nodes(v, memo, open_)
                for k, v in node.value
            )
        else:
            memo[key] = 1
        open_.discard(key)
    return memo[key]


def load_bounded(text: str) -> Any:
    """``yaml.safe_load(text)`` after the checks of the module docstring; raises
    :class:`YamlProblem` (one line) for anything refused or unparsable."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if (duplicate := _duplicate_key(root, set())) is not None:
            key, line = duplicate
            raise YamlProblem(f"line {line}: duplicate key '{key}' (YAML keeps only one)")
        nodes = _expanded_nodes(root, {}, set())
        if nodes > MAX_NODES:
            raise YamlProblem(f"expands to {nodes} YAML nodes (aliases); limit {MAX_NODES}")
        return yaml.safe_load(text)
    except RecursionError:
        raise YamlProblem("invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlProblem(f"invalid YAML: {where}{problem}") from None
