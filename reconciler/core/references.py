"""Checks that need every spec document at once: unique names and references between kinds.

One document can only be checked alone by its model; whether the Profile a Branch names
exists, or whether two files define the same TestGroup, needs the whole spec directory. Pure:
the loader extracts names and referring values with their locations, this module decides what
is wrong and how to say it, so the rules are tested without YAML and shared by every caller.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.model.errors import SpecError
from reconciler.model.specset import SourceLocation


@dataclass(frozen=True)
class Reference:
    """A field of one kind that names a document of another kind."""

    from_kind: str
    field: str
    to_kind: str
    many: bool
    """The field holds a list of names rather than one name."""


REFERENCES: tuple[Reference, ...] = (
    Reference(from_kind="Branch", field="repo", to_kind="Repo", many=False),
    Reference(from_kind="Branch", field="test_groups", to_kind="TestGroup", many=True),
    Reference(from_kind="Branch", field="profiles", to_kind="Profile", many=True),
    Reference(from_kind="Branch", field="baseline", to_kind="Baseline", many=False),
    Reference(from_kind="Baseline", field="repo", to_kind="Repo", many=False),
    Reference(from_kind="Baseline", field="test_groups", to_kind="TestGroup", many=True),
    Reference(from_kind="Baseline", field="profiles", to_kind="Profile", many=True),
    Reference(from_kind="TestGroup", field="harness", to_kind="Harness", many=False),
)

_LISTED_NAMES_LIMIT = 10
"""Hints list at most this many known names; a farm may define hundreds."""


@dataclass(frozen=True)
class NamedDocument:
    """A document of a known kind, valid or not: enough to detect clashes and references."""

    kind: str
    name: str | None
    """None when the document has no usable name (already reported by validation)."""
    location: SourceLocation

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}" if self.name is not None else f"{self.kind} document"


@dataclass(frozen=True)
class ReferringValue:
    """One name written in a reference field, e.g. the second item of a Branch's `profiles`."""

    owner: NamedDocument
    reference: Reference
    target: str
    location: SourceLocation


def duplicate_name_errors(documents: Iterable[NamedDocument]) -> list[SpecError]:
    """An error at each document whose kind and name an earlier document already has."""
    first_seen: dict[tuple[str, str], NamedDocument] = {}
    errors: list[SpecError] = []
    for document in documents:
        if document.name is None:
            continue
        key = (document.kind, document.name)
        first = first_seen.setdefault(key, document)
        if first is not document:
            errors.append(
                SpecError(
                    f"duplicate {document.label}",
                    location=document.location,
                    hint=(
                        f"the first is at {first.location}; names must be unique per kind: "
                        "rename or remove one"
                    ),
                )
            )
    return errors


def _known_names_hint(target: str, *, kind: str, names: Sequence[str]) -> str:
    """The closest name, or the known names (sorted, unique), or how to define one."""
    close = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if not names:
        return f"no {kind} is defined: add a document with 'kind: {kind}' and 'name: {target}'"
    shown = ", ".join(names[:_LISTED_NAMES_LIMIT])
    more = len(names) - _LISTED_NAMES_LIMIT
    return f"known {kind} names: {shown}" + (f" (and {more} more)" if more > 0 else "")


def dangling_reference_errors(
    referring: Iterable[ReferringValue],
    *,
    defined: Mapping[str, Sequence[str]],
    unreadable_files: Sequence[str] = (),
) -> list[SpecError]:
    """An error at each name that no document of the referenced kind has.

    `defined` maps a kind to every name a document of that kind has, including documents that
    failed validation: their errors are reported already, and a second error at every place
    naming them would only bury the first. Names may also hide in `unreadable_files` (files a
    syntax error stopped part way); the hint says so rather than staying silent.
    """
    defined_sets = {kind: frozenset(names) for kind, names in defined.items()}
    sorted_names = {kind: sorted(names) for kind, names in defined_sets.items()}
    errors: list[SpecError] = []
    for value in referring:
        kind = value.reference.to_kind
        if value.target in defined_sets.get(kind, frozenset()):
            continue
        hint = _known_names_hint(value.target, kind=kind, names=sorted_names.get(kind, []))
        if unreadable_files:
            hint += f" ({', '.join(unreadable_files)} could not be read and may define it)"
        errors.append(
            SpecError(
                f"{value.owner.label} refers to unknown {kind} {value.target!r}",
                location=value.location,
                hint=hint,
            )
        )
    return errors


def repeated_item_errors(referring: Iterable[ReferringValue]) -> list[SpecError]:
    """An error at each repeat in a list of names (`profiles: [a, a]`): a slip, never intent."""
    first_seen: dict[tuple[NamedDocument, str, str], ReferringValue] = {}
    errors: list[SpecError] = []
    for value in referring:
        if not value.reference.many:
            continue
        key = (value.owner, value.reference.field, value.target)
        first = first_seen.setdefault(key, value)
        if first is not value:
            errors.append(
                SpecError(
                    f"{value.owner.label} lists {value.reference.to_kind} {value.target!r} twice "
                    f"in {value.reference.field}",
                    location=value.location,
                    hint=f"the first is at {first.location}; remove the repeat",
                )
            )
    return errors
