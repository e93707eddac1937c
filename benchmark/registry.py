"""A small typed registry shared by models, datasets, evaluations and training recipes.

Why not a dict of strings to callables: every entry also carries a pydantic model of its
parameters (derived from the builder's signature or given explicitly), so a suite file can be
validated -- unknown keys, wrong types, missing values -- before anything runs, and
``python -m benchmark models`` can list parameters with their types and defaults.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from benchmark.errors import BenchmarkError

T = TypeVar("T")


class StrictParams(BaseModel):
    """Base for parameter models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def params_model_from_signature(fn: Callable[..., Any], skip: set[str]) -> type[StrictParams]:
    """Build a pydantic model from the keyword parameters of ``fn`` (minus ``skip``)."""
    hints = typing.get_type_hints(fn)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    return create_model(f"{fn.__name__}_params", __base__=StrictParams, **fields)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its documentation and parameter model."""

    key: str
    obj: T
    description: str
    params_model: type[StrictParams]
    extras: dict[str, Any] = field(default_factory=dict)

    def parameter_table(self) -> list[tuple[str, str, str]]:
        """(name, type, default) per parameter, for listings."""
        rows = []
        for name, info in self.params_model.model_fields.items():
            annotation = info.annotation
            plain = isinstance(annotation, type) and not getattr(annotation, "__args__", None)
            type_name = annotation.__name__ if plain else str(annotation)  # type: ignore[union-attr]
            type_name = type_name.replace("typing.", "")
            default = "required" if info.is_required() else repr(info.default)
            rows.append((name, type_name, default))
        return rows


class Registry(Generic[T]):
    """Maps keys to :class:`Entry` objects; ``kind`` names the registry in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        # "prefix" -> function building the entry of any key "prefix:<name>" on demand
        # (e.g. "robustbench:<zoo model>": a family too large and remote to list up front).
        self._resolvers: dict[str, Callable[[str], Entry[T]]] = {}

    def add_resolver(self, prefix: str, resolve: Callable[[str], Entry[T]]) -> None:
        """Serve every key ``<prefix>:<name>`` by ``resolve(key)`` (built when asked for)."""
        self._resolvers[prefix] = resolve

    def _resolve(self, key: str) -> Entry[T] | None:
        prefix, sep, _ = key.partition(":")
        if sep and prefix in self._resolvers:
            return self._resolvers[prefix](key)
        return None

    def add(self, entry: Entry[T]) -> None:
        if entry.key in self._entries and self._entries[entry.key].obj is not entry.obj:
            raise ValueError(f"{self.kind} '{entry.key}' is already registered")
        self._entries[entry.key] = entry

    def get(self, key: str) -> Entry[T]:
        if key in self._entries:
            return self._entries[key]
        resolved = self._resolve(key)
        if resolved is not None:
            return resolved
        known = ", ".join(sorted(self._entries) + [f"{p}:<name>" for p in self._resolvers])
        raise BenchmarkError(f"unknown {self.kind} '{key}' (known: {known or 'none'})")

    def __contains__(self, key: object) -> bool:
        if key in self._entries:
            return True
        try:
            return isinstance(key, str) and self._resolve(key) is not None
        except BenchmarkError:
            return False

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.key))

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def validate_params(self, key: str, params: dict[str, Any]) -> StrictParams:
        """Validate ``params`` for entry ``key``; raises pydantic's ValidationError."""
        return self.get(key).params_model.model_validate(params)


def format_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    """One ``field.path: message`` line per pydantic error, with ``prefix`` before the path."""
    lines = []
    for item in error.errors():
        path = prefix
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                name = _printable(str(part))
                path += f".{name}" if path else name
        message = item["msg"]
        if item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif item["type"] == "extra_forbidden":
            message = "unknown field (not allowed here)"
        elif item["type"] == "missing":
            message = "required field is missing"
        elif "input" in item and item["type"] not in ("model_type", "value_error"):
            shown = repr(item["input"])  # bounded: an alias bomb's value is megabytes long
            message += f" (got {shown if len(shown) <= 200 else shown[:200] + '...'})"
        # one line each, whatever the document holds (a key "\n" must not split the line)
        lines.append(f"{path or '<top level>'}: {message}".replace("\n", "\\n"))
    return lines


def _printable(name: str) -> str:
    """A field name as typed (``width``), or quoted with escapes if it has odd characters."""
    return name if name.isprintable() and name.strip() == name and name else repr(name)
