"""Load a spec directory into a validated SpecSet, or report every problem in it at once.

A spec repo is edited by hand and reviewed in pull requests, so a mistake must be reported
where it was written (FILE:LINE:COLUMN) with what to do about it, and all mistakes together,
so one edit fixes them all instead of one run per mistake. Loading reads files and nothing
else: it creates nothing on disk, so `validate` and `plan` are safe to run anywhere.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.adapters.spec_build_inputs import unused_build_input_errors
from reconciler.adapters.spec_validation import validation_errors
from reconciler.adapters.yaml_documents import (
    Part,
    YamlDocument,
    locate,
    parse_yaml_documents,
    to_plain,
)
from reconciler.core.references import (
    REFERENCES,
    NamedDocument,
    ReferringValue,
    dangling_reference_errors,
    duplicate_name_errors,
    repeated_item_errors,
)
from reconciler.model.errors import SpecError, SpecErrors
from reconciler.model.specs import NAME_PATTERN, SPEC_KINDS, Spec
from reconciler.model.specset import SourceLocation, SpecSet

SPEC_SUFFIXES = (".yaml", ".yml")

_SPECSET_FIELDS: dict[str, str] = {
    "Repo": "repos",
    "Branch": "branches",
    "TestGroup": "test_groups",
    "Profile": "profiles",
    "Baseline": "baselines",
    "Harness": "harnesses",
    "WorkerPool": "worker_pools",
}
"""Which SpecSet dict holds each kind."""

_KINDS_WITH_LOCAL_URL = frozenset({"Repo", "Harness"})
_NAME = re.compile(NAME_PATTERN)
_KNOWN_KINDS = ", ".join(sorted(SPEC_KINDS))
_EMPTY_HINT = (
    "add YAML files (*.yaml, *.yml) holding documents that start with "
    f"'kind:' (one of {_KNOWN_KINDS}) and 'name:'"
)


@dataclass
class _Findings:
    """Everything gathered while reading the files, before cross-document checks."""

    errors: list[SpecError] = field(default_factory=list)
    specs: list[tuple[str, Spec, SourceLocation]] = field(default_factory=list)
    valid_documents: dict[tuple[str, str], YamlDocument] = field(default_factory=dict)
    """The YAML of each valid spec, by (kind, name): where a cross-document error points."""
    documents: list[NamedDocument] = field(default_factory=list)
    referring: list[ReferringValue] = field(default_factory=list)
    unreadable_files: list[str] = field(default_factory=list)
    document_count: int = 0


def load_specs(spec_dir: Path) -> SpecSet:
    """Every document under `spec_dir`, validated and cross-checked.

    Raises SpecErrors carrying every problem found: YAML syntax, unknown kinds and keys, bad
    values, duplicate names, dangling references, build inputs no build uses. File names in
    messages are `spec_dir` joined with the file's relative path, as given (a relative
    `spec_dir` stays relative).
    """
    if not spec_dir.is_dir():
        problem = "does not exist" if not spec_dir.exists() else "is not a directory"
        raise SpecErrors(
            [
                SpecError(
                    f"spec directory '{spec_dir}' {problem}",
                    location=None,
                    hint="pass the directory holding your YAML specs (e.g. --specs specs)",
                )
            ]
        )
    findings = _Findings()
    for spec_file in _spec_files(spec_dir, findings.errors):
        _read_spec_file(spec_file, findings=findings)
    if findings.document_count == 0 and not findings.errors:
        findings.errors.append(
            SpecError(f"no spec documents in '{spec_dir}'", location=None, hint=_EMPTY_HINT)
        )
    findings.errors.extend(_cross_document_errors(findings))
    if findings.errors:
        raise SpecErrors(_unique(findings.errors))
    return _spec_set(spec_dir, findings.specs)


def _spec_files(spec_dir: Path, errors: list[SpecError]) -> list[Path]:
    """YAML files under `spec_dir` in sorted order, skipping hidden files and directories."""

    def report(exc: OSError) -> None:
        errors.append(
            SpecError(
                f"cannot read directory '{exc.filename}': {exc.strerror}",
                location=None,
                hint="make it readable, or move it out of the spec directory",
            )
        )

    found: list[Path] = []
    for directory, subdirectories, file_names in os.walk(spec_dir, onerror=report):
        # Pruning in place stops os.walk descending into .git and other hidden trees.
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        found.extend(
            Path(directory) / name
            for name in file_names
            if not name.startswith(".") and name.endswith(SPEC_SUFFIXES)
        )
    return sorted(found, key=lambda path: path.relative_to(spec_dir).as_posix())


MAX_SPEC_BYTES = 4 << 20
"""A spec file larger than this is refused: specs are text a person writes."""


def _read_text(spec_file: Path, *, display: str) -> str | SpecError:
    where = SourceLocation(file=display, line=1, column=1)
    try:
        # Opened without following a FIFO's or device's promise of data: O_NONBLOCK keeps a
        # FIFO from hanging the open, and only a regular file (a symlink's target included)
        # is read, at most one byte past the limit.
        descriptor = os.open(spec_file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return SpecError(
                    "spec file is not a regular file (a FIFO, device or directory)",
                    location=where,
                    hint="specs are plain files: remove it from the spec directory, or rename it"
                    " so it does not end in .yaml or .yml",
                )
            with os.fdopen(descriptor, "rb", closefd=False) as stream:
                raw = stream.read(MAX_SPEC_BYTES + 1)
        finally:
            os.close(descriptor)
    except OSError as exc:
        return SpecError(
            f"cannot read spec file: {exc.strerror}",
            location=where,
            hint="make the file readable, or remove it from the spec directory",
        )
    if len(raw) > MAX_SPEC_BYTES:
        return SpecError(
            f"spec file is larger than {MAX_SPEC_BYTES >> 20} MiB",
            location=where,
            hint="specs are text a person writes: split it, or remove it from the spec directory",
        )
    try:
        # utf-8-sig: a byte order mark from a Windows editor is not a syntax error.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8-sig", errors="replace")
        line_start = before.rfind("\n") + 1
        return SpecError(
            "spec file is not UTF-8 text",
            location=SourceLocation(
                file=display, line=before.count("\n") + 1, column=exc.start - line_start + 1
            ),
            hint="save the file as UTF-8",
        )


def _read_spec_file(spec_file: Path, *, findings: _Findings) -> None:
    display = str(spec_file)
    text = _read_text(spec_file, display=display)
    if isinstance(text, SpecError):
        findings.errors.append(text)
        findings.unreadable_files.append(display)
        return
    parsed = parse_yaml_documents(text, file=display)
    findings.errors.extend(parsed.problems)
    if not parsed.complete:
        findings.unreadable_files.append(display)
    for document in parsed.documents:
        findings.document_count += 1
        _read_document(document, spec_file=spec_file, findings=findings)


def _document_kind(document: YamlDocument) -> str | SpecError:
    """The document's kind, or why it has none we know."""
    content = document.content
    if not isinstance(content, dict):
        found = "a list" if isinstance(content, list) else f"the value {content!r}"
        return SpecError(
            f"a spec document must be a mapping, not {found}",
            location=document.start,
            hint="start the document with 'kind: <Kind>' and 'name: <name>' lines",
        )
    if content.get("kind") is None:
        return SpecError(
            "document has no 'kind'",
            location=document.start,
            hint=f"add 'kind:' with one of {_KNOWN_KINDS}",
        )
    kind = content["kind"]
    if isinstance(kind, str) and kind in SPEC_KINDS:
        return kind
    suggestion = None
    if isinstance(kind, str):
        close = difflib.get_close_matches(kind, list(SPEC_KINDS), n=1, cutoff=0.6)
        lowered = {known.lower(): known for known in SPEC_KINDS}.get(kind.lower())
        suggestion = lowered or (close[0] if close else None)
    hint = f"known kinds: {_KNOWN_KINDS}"
    return SpecError(
        f"unknown kind {kind!r}",
        location=locate(document, ["kind"], part=Part.VALUE),
        hint=f"did you mean {suggestion!r}? {hint}" if suggestion else hint,
    )


def _read_document(document: YamlDocument, *, spec_file: Path, findings: _Findings) -> None:
    kind = _document_kind(document)
    if isinstance(kind, SpecError):
        findings.errors.append(kind)
        return
    content = document.content
    raw_name = content.get("name")
    named = NamedDocument(
        kind=kind,
        name=raw_name if isinstance(raw_name, str) else None,
        location=document.start,
    )
    findings.documents.append(named)
    findings.referring.extend(_referring_values(document, owner=named))

    plain = to_plain(content)
    if kind in _KINDS_WITH_LOCAL_URL and "url" in plain:
        plain["url"] = _resolve_local_url(plain["url"], spec_file=spec_file)
    if kind == "TestGroup" and isinstance(plain.get("expunges"), list):
        # Expunge lists live in the spec repo beside the specs that name them.
        plain["expunges"] = [
            _resolve_local_url(path, spec_file=spec_file) for path in plain["expunges"]
        ]
    try:
        spec = SPEC_KINDS[kind].model_validate(plain)
    except ValidationError as exc:
        findings.errors.extend(
            validation_errors(exc, document=document, model=SPEC_KINDS[kind], owner=named.label)
        )
        return
    findings.specs.append((kind, spec, document.start))
    findings.valid_documents[(kind, spec.name)] = document


def _referring_values(document: YamlDocument, *, owner: NamedDocument) -> list[ReferringValue]:
    """Names in the document's reference fields, each with where it was written.

    Read from the raw document, not the validated model, so a Branch with an unrelated typo
    still has its references checked. Values that are not names are left to validation.
    """
    content = document.content
    values: list[ReferringValue] = []
    for reference in REFERENCES:
        if reference.from_kind != owner.kind or reference.field not in content:
            continue
        raw = content[reference.field]
        if reference.many:
            candidates = list(enumerate(raw)) if isinstance(raw, list) else []
            paths: list[tuple[Sequence[object], Any]] = [
                ([reference.field, index], item) for index, item in candidates
            ]
        else:
            paths = [([reference.field], raw)]
        values.extend(
            ReferringValue(
                owner=owner,
                reference=reference,
                target=str(target),
                location=locate(document, path, part=Part.VALUE),
            )
            for path, target in paths
            if isinstance(target, str) and _NAME.match(target)
        )
    return values


def _resolve_local_url(url: object, *, spec_file: Path) -> object:
    """`url` made absolute when it is a local path written relative to its spec file.

    A spec repo may carry its own small repos or harnesses beside the specs (`url: ../ktest`);
    the reconciler runs from anywhere, so such paths are anchored at the spec file's directory.
    Left alone: anything with a scheme (`https://`, `file://`), scp-like remotes
    (`git@host:path`: a colon before any slash, git's own rule) and absolute paths. Pure path
    arithmetic (abspath + normpath, no symlink resolution): the path need not exist yet.
    """
    if not isinstance(url, str) or not url or "://" in url or os.path.isabs(url):
        return url
    if url.startswith("-"):
        return url  # refused by the model's URL check, which must see it as written
    before_slash = url.split("/", 1)[0]
    if ":" in before_slash:
        return url
    return os.path.normpath(os.path.join(os.path.abspath(spec_file.parent), url))


def _cross_document_errors(findings: _Findings) -> list[SpecError]:
    defined: dict[str, list[str]] = {}
    for document in findings.documents:
        if document.name is not None:
            defined.setdefault(document.kind, []).append(document.name)
    return [
        *duplicate_name_errors(findings.documents),
        *dangling_reference_errors(
            findings.referring, defined=defined, unreadable_files=findings.unreadable_files
        ),
        *repeated_item_errors(findings.referring),
        *unused_build_input_errors(
            [(kind, spec) for kind, spec, _ in findings.specs],
            documents=findings.valid_documents,
        ),
    ]


def _unique(errors: list[SpecError]) -> list[SpecError]:
    """Errors without exact repeats (pydantic can report one value twice through a union)."""
    seen: set[tuple[str, str | None, str | None]] = set()
    unique: list[SpecError] = []
    for error in errors:
        key = (error.message, error.where, error.hint)
        if key not in seen:
            seen.add(key)
            unique.append(error)
    return unique


def _spec_set(spec_dir: Path, specs: list[tuple[str, Spec, SourceLocation]]) -> SpecSet:
    spec_set = SpecSet(spec_dir=spec_dir)
    for kind, spec, location in specs:
        by_name: dict[str, Spec] = getattr(spec_set, _SPECSET_FIELDS[kind])
        by_name[spec.name] = spec
        spec_set.locations[(kind, spec.name)] = location
    return spec_set
