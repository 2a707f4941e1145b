"""`reconciler explain ID [OTHER]`: what an identity is made of, and why two identities differ.

An identity is a hash; a person asking "why did this not reuse that?" needs its inputs. Every
build and result keeps its preimage, so the answer is exact: the inputs, flattened to dotted
paths (`build.env.CFLAGS`, `runtime.mem`), and with OTHER only the paths that differ, named in
the words `plan` uses for them (`INPUT_PHRASES`: "build environment changed").

A result's preimage holds its build only as a hash, which says *that* the build differs, not
how; so a result's build inputs are read from the stored build record and shown nested under
`build.`, and a build's own inputs carry the same `build.` names, so one input has one name
whichever identity it is seen through.

Identities are given in full or by a unique prefix of at least 6 hex digits, as in the UI's
12-character form, and may name a result or a build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.adapters.store.files import ResultStore
from reconciler.adapters.store.layout import id_from_record_path
from reconciler.core.identity import SHORT, diff_preimages
from reconciler.core.nearest_identity import input_phrase
from reconciler.model.errors import UserError
from reconciler.model.results import BuildRecord, ResultRecord

MIN_PREFIX = 6
MAX_CANDIDATES = 10
_HEX = re.compile(r"^[0-9a-f]{1,64}$")

# Result-level inputs whose `plan` phrase ("new test") fits a planned unit, not two results.
_RESULT_PHRASES = {"test": "test changed", "subtest": "subtest changed", "build": "build changed"}


class IdentityKind(StrEnum):
    RESULT = "result"
    BUILD = "build"


@dataclass(frozen=True)
class Explained:
    """One stored identity and its inputs, flattened to dotted paths."""

    kind: IdentityKind
    id: str
    inputs: Mapping[str, Any]
    summary: Mapping[str, Any]
    """What the record says beyond its inputs: status, attempts, image hash; not identity."""
    build_preimage: Mapping[str, Any] | None = field(default=None, repr=False)
    """For a result, its build's preimage when the build record is stored."""
    preimage: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "id": self.id,
            **self.summary,
            "inputs": dict(self.inputs),
        }


@dataclass(frozen=True)
class InputChange:
    path: str
    phrase: str
    a: Any
    b: Any


@dataclass(frozen=True)
class Explanation:
    subject: Explained
    other: Explained | None = None
    differences: tuple[InputChange, ...] = ()

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(change.phrase for change in self.differences))


def flatten(preimage: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as {dotted path: leaf value}; lists are leaves, an empty mapping is kept."""
    flat: dict[str, Any] = {}
    for key in sorted(preimage):
        value = preimage[key]
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{path}."))
        else:
            flat[path] = value
    return flat


def find_identity(store: ResultStore, identity: str) -> tuple[IdentityKind, str]:
    """The one result or build whose id starts with `identity`; UserError listing candidates."""
    prefix = identity.strip().lower()
    if not _HEX.match(prefix) or len(prefix) < MIN_PREFIX:
        raise UserError(
            f"{identity!r} is not an identity",
            hint=f"give a result or build id: {MIN_PREFIX} to 64 hex digits",
        )
    layout = store.layout
    # Result files are sharded by their first two hex digits, so a prefix reads one shard.
    results = sorted(
        found
        for path in (layout.results_dir / prefix[:2]).glob(f"{prefix}*.json")
        if (found := id_from_record_path(path)) is not None
    )
    builds = sorted(
        found
        for path in layout.builds_dir.glob(f"{prefix}*.json")
        if (found := id_from_record_path(path)) is not None
    )
    candidates = [(IdentityKind.RESULT, i) for i in results] + [
        (IdentityKind.BUILD, i) for i in builds
    ]
    if not candidates:
        raise UserError(
            f"no result or build starting with {prefix} in {store.root}",
            hint="ids are shown by `plan --format json` and `compare --format json`; check --store",
        )
    if len(candidates) > 1:
        shown = ", ".join(f"{kind.value} {i[:16]}" for kind, i in candidates[:MAX_CANDIDATES])
        more = len(candidates) - MAX_CANDIDATES
        shown += f" and {more} more" if more > 0 else ""
        raise UserError(f"identity prefix {prefix} is ambiguous: {shown}", hint="give more digits")
    return candidates[0]


def load_identity(store: ResultStore, identity: str) -> Explained:
    kind, found = find_identity(store, identity)
    if kind is IdentityKind.BUILD:
        build = store.get_build(found)
        if build is None:
            raise UserError(f"build {found} vanished from {store.root} while being read")
        return _build_explained(build)
    result = store.get_result(found)
    if result is None:
        raise UserError(f"result {found} vanished from {store.root} while being read")
    return _result_explained(result, store.get_build(result.build))


def _build_explained(build: BuildRecord) -> Explained:
    return Explained(
        kind=IdentityKind.BUILD,
        id=build.id,
        inputs=flatten(build.preimage, prefix="build."),
        summary={
            "status": build.status.value,
            "image_hash": build.image_hash,
            "resolved_config_hash": build.resolved_config_hash,
        },
        preimage=build.preimage,
    )


def _result_explained(result: ResultRecord, build: BuildRecord | None) -> Explained:
    inputs = flatten(result.preimage)
    if build is not None:
        inputs.update(flatten(build.preimage, prefix="build."))
    return Explained(
        kind=IdentityKind.RESULT,
        id=result.id,
        inputs=dict(sorted(inputs.items())),
        summary={
            "test": result.test,
            "subtest": result.subtest,
            "status": result.status.value,
            "attempts": [attempt.status.value for attempt in result.attempts],
            "build_stored": build is not None,
        },
        build_preimage=build.preimage if build is not None else None,
        preimage=result.preimage,
    )


def phrase_for(path: str) -> str:
    return _RESULT_PHRASES.get(path) or input_phrase(path)


def differences(a: Explained, b: Explained) -> tuple[InputChange, ...]:
    """Inputs that differ, build inputs by name when both builds are stored."""
    if a.kind is not b.kind:
        raise UserError(
            f"cannot compare a {a.kind.value} with a {b.kind.value}",
            hint="give two results or two builds; a result's build id is its `build` input",
        )
    if a.kind is IdentityKind.BUILD:
        pairs = [(flatten(a.preimage, prefix="build."), flatten(b.preimage, prefix="build."))]
    else:
        own_a, own_b = dict(a.preimage), dict(b.preimage)
        pairs = []
        if a.build_preimage is not None and b.build_preimage is not None:
            # The builds' inputs say how they differ; their hashes would only repeat it.
            own_a.pop("build", None)
            own_b.pop("build", None)
            pairs.append(
                (
                    flatten(a.build_preimage, prefix="build."),
                    flatten(b.build_preimage, prefix="build."),
                )
            )
        pairs.insert(0, (flatten(own_a), flatten(own_b)))
    changes = [
        InputChange(d.path, phrase_for(d.path), d.left, d.right)
        for left, right in pairs
        for d in diff_preimages(left, right)
    ]
    return tuple(sorted(changes, key=lambda change: change.path))


def explain(store: ResultStore, identity: str, other: str | None = None) -> Explanation:
    """`identity`'s inputs; with `other`, also the inputs in which the two differ."""
    subject = load_identity(store, identity)
    if other is None:
        return Explanation(subject)
    second = load_identity(store, other)
    return Explanation(subject, second, differences(subject, second))


# Rendering.


def _value(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, ensure_ascii=False)


def _heading(label: str, explained: Explained) -> str:
    summary = explained.summary
    if explained.kind is IdentityKind.RESULT:
        attempts = summary["attempts"]
        tries = f", attempts {'/'.join(attempts)}" if len(attempts) > 1 else ""
        what = f"{summary['test']}:{summary['subtest']} ({summary['status']}{tries})"
    else:
        image = summary["image_hash"]
        what = f"({summary['status']}{f', image {image[:SHORT]}' if image else ''})"
    return f"{label}{explained.kind.value} {explained.id}  {what}"


def render_text(explanation: Explanation) -> str:
    subject, other = explanation.subject, explanation.other
    if other is None:
        lines = [_heading("", subject), ""]
        width = max((len(path) for path in subject.inputs), default=0)
        lines += [f"  {path:<{width}}  {_value(v)}" for path, v in subject.inputs.items()]
        if subject.kind is IdentityKind.RESULT and subject.build_preimage is None:
            lines += ["", "  (its build record is not stored: build inputs unknown)"]
        return "\n".join(lines) + "\n"
    lines = [_heading("A: ", subject), _heading("B: ", other), ""]
    if not explanation.differences:
        lines.append("same inputs: the same identity")
        return "\n".join(lines) + "\n"
    count = len(explanation.differences)
    lines.append(
        f"{count} {'inputs differ' if count != 1 else 'input differs'}: "
        f"{', '.join(explanation.phrases)}"
    )
    width = max(len(change.path) for change in explanation.differences)
    lines += [
        f"  {change.path:<{width}}  {_value(change.a)} -> {_value(change.b)}"
        for change in explanation.differences
    ]
    return "\n".join(lines) + "\n"


def render_json(explanation: Explanation) -> str:
    if explanation.other is None:
        document = explanation.subject.as_json()
    else:
        document = {
            "a": explanation.subject.as_json(),
            "b": explanation.other.as_json(),
            "phrases": list(explanation.phrases),
            "differences": [
                {"path": c.path, "phrase": c.phrase, "a": c.a, "b": c.b}
                for c in explanation.differences
            ],
        }
    return json.dumps(document, indent=2) + "\n"
