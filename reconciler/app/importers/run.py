"""The import use case: read and validate everything, place it, then write it in one go.

Order matters for "nothing half-imported": the specs and git are asked first (matched mode),
then every input file is read, parsed and cross-checked (kdevops summaries), every outcome is
placed and turned into a record in memory, and only then is the store opened and written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from reconciler.adapters.store.files import ResultStore
from reconciler.app.importers.fstests import fstests_outcomes, read_results_dir
from reconciler.app.importers.identity import (
    KnownInputs,
    MatchedPlacer,
    UnmatchedPlacer,
)
from reconciler.app.importers.kdevops import read_archive
from reconciler.app.importers.ktest import read_ktest_dir, result_key, split_result_key
from reconciler.app.importers.records import (
    ImportedOutcome,
    ImportReport,
    StagedImport,
    write_staged,
)
from reconciler.app.importers.slots import MatchRequest, desired_slot
from reconciler.app.importers.summary import counts_of, mismatches, parse_summary
from reconciler.app.planning import Workspace
from reconciler.model.desired import DesiredSlot
from reconciler.model.errors import UserError
from reconciler.model.specs import HarnessType


class ImportKind(StrEnum):
    FSTESTS = "fstests"
    KTEST = "ktest"
    KDEVOPS = "kdevops"


HARNESS_TYPES = {
    ImportKind.FSTESTS: HarnessType.FSTESTS,
    ImportKind.KTEST: HarnessType.KTEST,
    ImportKind.KDEVOPS: HarnessType.FSTESTS,
}


@dataclass(frozen=True)
class ImportRequest:
    kind: ImportKind
    source: Path
    workspace: Workspace
    match: MatchRequest | None = None
    """None: an unmatched (archival) import."""
    known: KnownInputs = field(default_factory=KnownInputs)
    section: str | None = None
    """fstests section to read; for kdevops, the archive section to import."""
    summary: str | None = None
    """kdevops: the results-archive commit message to cross-check against."""


@dataclass(frozen=True)
class _Batch:
    """Outcomes of one run: a results dir, a ktest commit, a kdevops (kernel, section)."""

    label: str
    outcomes: tuple[ImportedOutcome, ...]
    known: KnownInputs
    incomplete: tuple[str, ...] = ()
    commit: str | None = None
    kernel: str | None = None
    section: str | None = None


def run_import(request: ImportRequest) -> ImportReport:
    imported_from = f"{request.kind.value}:{request.source.name}"
    staged = StagedImport(imported_from=imported_from)
    notes: list[str] = []
    if request.match is not None:
        _refuse_unmatched_inputs(request)
        slot = desired_slot(
            request.match, workspace=request.workspace, harness_type=HARNESS_TYPES[request.kind]
        )
        batch = _matched_batch(request, slot=slot, notes=notes)
        claim = (
            f"imported from {imported_from}; asserted by the importer to be commit "
            f"{slot.commit.commit} (tree {slot.commit.tree}) built and run under profile "
            f"{slot.profile!r} with harness {slot.harness!r}"
        )
        key_of = result_key if request.kind is ImportKind.KTEST else _fstests_key
        staged.stage(batch.outcomes, placer=MatchedPlacer(slot, key_of=key_of), claim=claim)
        staged.incomplete.extend(batch.incomplete)
    else:
        split = split_result_key if request.kind is ImportKind.KTEST else _fstests_split
        claim = f"imported from {imported_from}; inputs it does not record are 'unknown'"
        for batch in _read(request, section=request.section):
            batch.known.check()
            placer = UnmatchedPlacer(
                batch.known,
                kind=request.kind.value,
                harness_type=HARNESS_TYPES[request.kind].value,
                split=split,
            )
            staged.stage(batch.outcomes, placer=placer, claim=claim)
            staged.incomplete.extend(batch.incomplete)
    with ResultStore(request.workspace.store_dir) as store:
        return write_staged(staged, store, notes=notes)


def _fstests_key(test: str, subtest: str) -> str:
    return subtest  # an fstests test is its own single subtest


def _fstests_split(key: str) -> tuple[str, str]:
    return key, key


def _refuse_unmatched_inputs(request: ImportRequest) -> None:
    known = request.known
    given = [
        flag
        for flag, value in (
            ("--kernel-tree", known.kernel_tree),
            ("--config", known.config_sha256),
            ("--arch", known.arch),
            *((f"--{name.replace('_', '-')}", value) for name, value in known.runtime.items()),
        )
        if value is not None
    ]
    if known.kernel_version is not None and request.kind is not ImportKind.KDEVOPS:
        given.append("--kernel-version")
    if given:
        raise UserError(
            f"{', '.join(given)} cannot be combined with --branch/--baseline: the specs decide"
            " every input of a matched import",
            hint="drop them, or drop --branch/--baseline for an archival import",
        )


def _matched_batch(request: ImportRequest, *, slot: DesiredSlot, notes: list[str]) -> _Batch:
    runtime = slot.units[0].preimage.get("runtime", {}) if slot.units else {}
    planned_section = runtime.get("section")
    section = request.section or planned_section
    if planned_section is not None and section != planned_section:
        raise UserError(
            f"profile {slot.profile!r} runs fstests section {planned_section!r}, not {section!r}",
            hint="import the section the profile runs, or name another profile",
        )
    batches = _read(request, section=section)
    if request.kind is ImportKind.KTEST:
        chosen = [batch for batch in batches if batch.commit == slot.commit.commit]
        others = len(batches) - len(chosen)
        if others:
            notes.append(f"{others} other commits in {request.source} not imported")
    elif request.kind is ImportKind.KDEVOPS:
        chosen = [
            batch
            for batch in batches
            if request.known.kernel_version in (None, batch.kernel)
            and section in (None, batch.section)
        ]
    else:
        chosen = batches
    if len(chosen) != 1:
        found = ", ".join(batch.label for batch in batches)
        raise UserError(
            f"{request.source} holds {len(chosen)} runs for commit {slot.commit.commit[:12]}"
            f" (found: {found})",
            hint="select one with --kernel-version and --section"
            if request.kind is ImportKind.KDEVOPS
            else "ktest results live in <dir>/<full commit id>/; --commit names the commit",
        )
    return chosen[0]


def _read(request: ImportRequest, *, section: str | None) -> list[_Batch]:
    source, known = request.source, request.known
    if request.kind is ImportKind.FSTESTS:
        files = read_results_dir(source)
        outcomes = fstests_outcomes(files, section=section, where=str(source))
        return [_Batch(str(source), tuple(outcomes), known.with_values(section=section))]
    if request.kind is ImportKind.KTEST:
        commits = read_ktest_dir(source)
        if known.kernel_tree is not None and len(commits) > 1:
            raise UserError(
                f"--kernel-tree names one tree, {source} holds {len(commits)} commits",
                hint="import one commit directory at a time",
            )
        return [
            _Batch(
                label=read.commit,
                outcomes=read.outcomes,
                known=known.with_values(kernel_commit=read.commit),
                incomplete=read.incomplete,
                commit=read.commit,
            )
            for read in commits
        ]
    sections = read_archive(source)
    batches = [
        _Batch(
            label=f"{item.kernel}/{item.section}",
            outcomes=tuple(
                fstests_outcomes(
                    item.files, section=None, where=f"{source}:{item.kernel}/{item.section}"
                )
            ),
            known=known.with_values(kernel_version=item.kernel, section=item.section),
            kernel=item.kernel,
            section=item.section,
        )
        for item in sections
    ]
    if request.summary is not None:
        _cross_check(batches, summary_text=request.summary, source=source)
    if request.match is None:
        # --kernel-version and --section pick runs out of a bigger archive.
        batches = [
            batch
            for batch in batches
            if known.kernel_version in (None, batch.kernel) and section in (None, batch.section)
        ]
        if not batches:
            raise UserError(f"{source} holds no run of that kernel and section")
    return batches


def _cross_check(batches: Sequence[_Batch], *, summary_text: str, source: Path) -> None:
    summary = parse_summary(summary_text)
    kernels = sorted({batch.kernel for batch in batches if batch.kernel is not None})
    kernel = summary.kernel or (kernels[0] if len(kernels) == 1 else None)
    if summary.kernel is not None and summary.kernel not in kernels:
        raise UserError(
            f"the summary is of kernel {summary.kernel}; {source} holds {', '.join(kernels)}",
            hint="pass the commit message that added this archive; nothing imported",
        )
    if kernel is None:
        raise UserError(
            f"{source} holds kernels {', '.join(kernels)} and the summary names none",
            hint="the summary's KERNEL: line says which kernel it describes",
        )
    sections = {
        batch.section: counts_of({o.key: o.status.value for o in batch.outcomes})
        for batch in batches
        if batch.kernel == kernel and batch.section is not None
    }
    problems = mismatches(summary, kernel=kernel, sections=sections)
    if problems:
        raise UserError(
            f"{source} does not match its summary; nothing imported:\n  " + "\n  ".join(problems),
            hint="the archive may have lost files; fetch it again",
        )
