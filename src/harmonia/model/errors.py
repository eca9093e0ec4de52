"""Harmonia's exception hierarchy and validation errors that name the field at fault.

Every layer raises subclasses of :class:`HarmoniaError`; the CLI and the API turn them
into messages and exit codes. Validation never stops at the first problem: an
:class:`InputError` carries every :class:`FieldError` found, each with a JSON path
(``applications[0].microservices[1].memory``) and the rule it broke.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


class HarmoniaError(Exception):
    """Base of every error Harmonia raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One broken rule at one place of an input document."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(HarmoniaError):
    """An input document (SLA descriptor, node list, request list) is invalid."""

    def __init__(self, errors: Sequence[FieldError], source: str = "") -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{head}{count} validation error{'s' if count != 1 else ''}\n{lines}")


def format_path(loc: Iterable[Any], prefix: str = "") -> str:
    """Render a location tuple as a JSON path: ``("apps", 0, "name")`` -> ``apps[0].name``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_pydantic(exc: Any, prefix: str = "", source: str = "") -> InputError:
    """Convert a ``pydantic.ValidationError`` into an :class:`InputError` with JSON paths.

    Pydantic puts union member tags and validator names into locations; those are not
    part of the user's document and are dropped.
    """
    errors = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not _is_internal_loc(p)]
        message = str(err["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        message = _RULES.get(err["type"], lambda ctx, msg: msg)(err.get("ctx") or {}, message)
        errors.append(FieldError(format_path(loc, prefix), message))
    return InputError(errors, source)


def _unquote(text: str) -> str:
    return text.strip("'")


_RULES: dict[str, Any] = {
    "extra_forbidden": lambda ctx, msg: "unknown field",
    "missing": lambda ctx, msg: "is required",
    "greater_than": lambda ctx, msg: f"must be > {ctx['gt']}",
    "greater_than_equal": lambda ctx, msg: f"must be >= {ctx['ge']}",
    "less_than": lambda ctx, msg: f"must be < {ctx['lt']}",
    "less_than_equal": lambda ctx, msg: f"must be <= {ctx['le']}",
    "string_pattern_mismatch": lambda ctx, msg: f"must match {ctx['pattern']}",
    "string_too_short": lambda ctx, msg: f"must have at least {ctx['min_length']} characters",
    "string_too_long": lambda ctx, msg: f"must have at most {ctx['max_length']} characters",
    "int_type": lambda ctx, msg: "must be an integer",
    "int_parsing": lambda ctx, msg: "must be an integer",
    "int_from_float": lambda ctx, msg: "must be a whole number",
    "float_type": lambda ctx, msg: "must be a number",
    "float_parsing": lambda ctx, msg: "must be a number",
    "string_type": lambda ctx, msg: "must be a string",
    "bool_type": lambda ctx, msg: "must be true or false",
    "bool_parsing": lambda ctx, msg: "must be true or false",
    "list_type": lambda ctx, msg: "must be a list",
    "tuple_type": lambda ctx, msg: "must be a list",
    "dict_type": lambda ctx, msg: "must be an object",
    "model_type": lambda ctx, msg: "must be an object",
    "model_attributes_type": lambda ctx, msg: "must be an object",
    "enum": lambda ctx, msg: f"must be one of {ctx['expected']}",
    "literal_error": lambda ctx, msg: f"must be {ctx['expected']}",
    "union_tag_invalid": lambda ctx, msg: (
        f"unknown {_unquote(ctx['discriminator'])} {ctx['tag']!r}; "
        f"expected one of {ctx['expected_tags']}"
    ),
    "union_tag_not_found": lambda ctx, msg: f"needs a {_unquote(ctx['discriminator'])} field",
}


def _is_internal_loc(part: Any) -> bool:
    if not isinstance(part, str):
        return False
    # Tagged-union members ('direct', ...) and function validators appear as extra loc
    # entries; real document keys never contain brackets or 'function-'.
    return part.startswith("function-") or "[" in part or part in _UNION_TAGS


_UNION_TAGS: frozenset[str] = frozenset()


def register_union_tags(tags: Iterable[str]) -> None:
    """Tell :func:`from_pydantic` which loc entries are discriminator tags, not keys."""
    global _UNION_TAGS
    _UNION_TAGS = _UNION_TAGS | frozenset(tags)
