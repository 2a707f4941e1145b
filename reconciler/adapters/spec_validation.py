"""Turn pydantic validation errors into SpecErrors that point at the YAML the user wrote.

pydantic reports a path (`hosts[1].slots`) and a message written for programmers. A spec author
needs the line and column of the culprit (the key for an unknown key, the value for a bad value,
the mapping for a missing key) and a hint saying what to write instead.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from reconciler.adapters.yaml_documents import Part, YamlDocument, locate
from reconciler.model.errors import SpecError
from reconciler.model.specs import NAME_PATTERN

_NAME_HINT = "a name is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
_MAPPING_HINT = "write a mapping: one 'key: value' per line, or {key: value, ...}"
_WHOLE_NUMBER_HINT = "write a whole number"


def _min_length_hint(error: ErrorDetails) -> str:
    minimum = error.get("ctx", {}).get("min_length", 1)
    return f"list at least {minimum} item{'s' if minimum != 1 else ''}"


def _bound_hint(word: str, key: str) -> Callable[[ErrorDetails], str]:
    return lambda error: f"use a value {word} {error.get('ctx', {}).get(key)}"


def _choice_hint(error: ErrorDetails) -> str:
    expected = str(error.get("ctx", {}).get("expected", ""))
    choices = [choice.strip().strip("'") for choice in expected.replace(" or ", ",").split(",")]
    choices = [choice for choice in choices if choice]
    given = error.get("input")
    close = difflib.get_close_matches(str(given), choices, n=1, cutoff=0.6)
    listed = f"use one of: {', '.join(choices)}"
    return f"did you mean {close[0]!r}? {listed}" if close else listed


def _string_hint(error: ErrorDetails) -> str:
    given = error.get("input")
    if given is None:
        return "give a value after the colon"
    if isinstance(given, dict | list):
        return "write a single string"
    # YAML reads `7.0`, `2024-01-01` and `true` as a number, a date and a boolean.
    return 'quote the value so YAML reads it as text (e.g. "7.0" rather than 7.0)'


def _pattern_hint(error: ErrorDetails) -> str | None:
    if error.get("ctx", {}).get("pattern") == NAME_PATTERN:
        return _NAME_HINT
    return None


_HINTS: dict[str, Callable[[ErrorDetails], str | None]] = {
    "int_type": lambda _: _WHOLE_NUMBER_HINT,
    "int_parsing": lambda _: _WHOLE_NUMBER_HINT,
    "int_from_float": lambda _: _WHOLE_NUMBER_HINT,
    "bool_type": lambda _: "write true or false",
    "bool_parsing": lambda _: "write true or false",
    "list_type": lambda _: "write a list: [a, b], or one '- item' per line",
    "dict_type": lambda _: _MAPPING_HINT,
    "model_type": lambda _: _MAPPING_HINT,
    "model_attributes_type": lambda _: _MAPPING_HINT,
    "too_short": _min_length_hint,
    "string_too_short": lambda _: "give a non-empty value",
    "greater_than_equal": _bound_hint("of at least", "ge"),
    "greater_than": _bound_hint("greater than", "gt"),
    "less_than_equal": _bound_hint("of at most", "le"),
    "less_than": _bound_hint("less than", "lt"),
    "enum": _choice_hint,
    "literal_error": _choice_hint,
    "string_type": _string_hint,
    "string_pattern_mismatch": _pattern_hint,
}
"""Hints by pydantic error type; otherwise the field's own documentation is the hint."""


def _path_text(path: Sequence[object]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        remaining = [arg for arg in get_args(annotation) if arg is not type(None)]
        return remaining[0] if len(remaining) == 1 else annotation
    return annotation


def _model_at(model: type[BaseModel], path: Sequence[object]) -> type[BaseModel] | None:
    """The nested model a path leads to (`runtime` -> Runtime, `hosts[1]` -> WorkerHost)."""
    current: Any = model
    for step in path:
        current = _without_none(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(step))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (list, dict) and get_args(current):
            current = get_args(current)[-1]
        else:
            return None
    current = _without_none(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_at(model: type[BaseModel], path: Sequence[object]) -> FieldInfo | None:
    if not path:
        return None
    parent = _model_at(model, path[:-1])
    return parent.model_fields.get(str(path[-1])) if parent else None


def _description(field: FieldInfo | None) -> str | None:
    if field is None or not field.description:
        return None
    return " ".join(field.description.split())


def _unknown_key_error(
    error: ErrorDetails, *, document: YamlDocument, model: type[BaseModel], owner: str
) -> SpecError:
    path = error["loc"]
    parent = _model_at(model, path[:-1])
    known = sorted(parent.model_fields) if parent else []
    close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:
        hint = f"known keys: {', '.join(known)}" if known else "remove it"
    return SpecError(
        f"unknown key {_path_text(path)!r} in {owner}",
        location=locate(document, path, part=Part.KEY),
        hint=hint,
    )


def _missing_key_error(
    error: ErrorDetails, *, document: YamlDocument, model: type[BaseModel], owner: str
) -> SpecError:
    path = error["loc"]
    description = _description(_field_at(model, path))
    hint = f"add '{path[-1]}:'" + (f"; {description}" if description else "")
    return SpecError(
        f"missing required key {_path_text(path)!r} in {owner}",
        # The mapping that lacks the key: the document itself or the nested mapping.
        location=locate(document, path[:-1], part=Part.VALUE),
        hint=hint,
    )


def _bad_value_error(
    error: ErrorDetails, *, document: YamlDocument, model: type[BaseModel], owner: str
) -> SpecError:
    path = error["loc"]
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    hint_for_type = _HINTS.get(error["type"])
    hint = hint_for_type(error) if hint_for_type else None
    if path and (error["type"] == "invalid_key" or path[-1] == "[key]"):
        # A mapping key that is not text (`env: {1: x}`, `1: x`): point at the key itself.
        key_path = path[:-1] if path[-1] == "[key]" else path
        where = f" under {_path_text(key_path[:-1])!r}" if len(key_path) > 1 else ""
        return SpecError(
            f"key {key_path[-1]!r}{where} in {owner} is not text",
            location=locate(document, key_path, part=Part.KEY),
            hint=f'quote the key: "{key_path[-1]}":',
        )
    if not path:
        # A check across fields of the document (a model validator).
        return SpecError(f"invalid {owner}: {message}", location=document.start, hint=hint)
    return SpecError(
        f"invalid value for {_path_text(path)!r} in {owner}: {message}",
        location=locate(document, path, part=Part.VALUE),
        hint=hint or _description(_field_at(model, path)),
    )


def validation_errors(
    exc: ValidationError, *, document: YamlDocument, model: type[BaseModel], owner: str
) -> list[SpecError]:
    """One SpecError per pydantic error, located in `document`; `owner` names the document."""
    errors: list[SpecError] = []
    for error in exc.errors(include_url=False):
        if error["type"] == "extra_forbidden":
            make = _unknown_key_error
        elif error["type"] == "missing":
            make = _missing_key_error
        else:
            make = _bad_value_error
        errors.append(make(error, document=document, model=model, owner=owner))
    return errors
