"""Imported outcomes turned into store records, staged in memory and written in one go.

An import must never leave the store half-written by a bad input: every file is read, parsed,
cross-checked and turned into a record (with its logs' addresses computed, not yet stored)
before anything is written. Only then are logs, builds and results written, results through
`ResultStore.put_results` (batched index updates). A failure while writing is the store's
(exit 3); writes are idempotent, so running the same import again finishes the job.

An imported attempt carries no worker and no time: neither is known, and leaving them out makes
re-importing the same files produce equal attempts, which the store recognises as already held.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.adapters.store.files import ResultStore
from reconciler.core.identity import ResultIdentities, result_preimage
from reconciler.model.errors import StoreError
from reconciler.model.results import Attempt, BuildRecord, BuildStatus, ResultRecord, Status


@dataclass(frozen=True)
class ImportedOutcome:
    """What the imported files say about one test, under the harness's own name for it."""

    key: str
    """`generic/035` for fstests; a ktest result key like `fs.bcachefs.single_device.wipe_btrfs`."""
    status: Status
    duration: float | None
    message: str | None
    log: bytes | None = None
    """The attempt's log: fstests' `.out.bad`/`.full`/`.dmesg` together, ktest's `log.br`."""
    full_log: bytes | None = None
    """ktest's `full_log.br` (the whole VM run); stored too, its address named in the message."""


@dataclass(frozen=True)
class Placement:
    """Where an outcome lands: its build, unit and subtest, hence its result identity."""

    build: str
    build_preimage: Mapping[str, Any]
    unit: str
    unit_fields: Mapping[str, Any]
    """The unit's inputs without `kind`; a result preimage is these plus the subtest."""
    test: str
    subtest: str


class Placer(Protocol):
    def place(self, key: str) -> Placement | None:
        """The placement of an imported key, or None when nothing asks for it."""


@dataclass
class StagedImport:
    """Everything an import will write, built before the store is touched."""

    imported_from: str
    results: dict[str, ResultRecord] = field(default_factory=dict)
    builds: dict[str, BuildRecord] = field(default_factory=dict)
    logs: dict[str, bytes] = field(default_factory=dict)
    log_refs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Result id -> addresses of the logs its attempt names."""
    not_desired: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def stage(self, outcomes: Iterable[ImportedOutcome], *, placer: Placer, claim: str) -> None:
        identities: dict[str, ResultIdentities] = {}
        for outcome in outcomes:
            placement = placer.place(outcome.key)
            if placement is None:
                self.not_desired.append(outcome.key)
                continue
            ids = identities.get(placement.unit)
            if ids is None:
                ids = identities[placement.unit] = ResultIdentities(placement.unit_fields)
            result_id = ids.of(placement.subtest)
            if result_id in self.results:
                # The same test twice in one import: the first report stands, as in a run.
                self.duplicates.append(outcome.key)
                continue
            self.results[result_id] = self._record(outcome, placement, result_id, claim=claim)
            self.builds.setdefault(
                placement.build,
                BuildRecord(
                    id=placement.build,
                    preimage=dict(placement.build_preimage),
                    status=BuildStatus.PASS,
                ),
            )

    def _log_address(self, data: bytes | None) -> str | None:
        if data is None:
            return None
        address = hashlib.sha256(data).hexdigest()
        self.logs[address] = data
        return address

    def _record(
        self, outcome: ImportedOutcome, placement: Placement, result_id: str, *, claim: str
    ) -> ResultRecord:
        full_log = self._log_address(outcome.full_log)
        log = self._log_address(outcome.log)
        self.log_refs[result_id] = tuple(address for address in (log, full_log) if address)
        parts = [outcome.message, f"full log: {full_log}" if full_log else None, claim]
        attempt = Attempt(
            status=outcome.status,
            duration=outcome.duration,
            log=log,
            message="\n".join(part for part in parts if part),
        )
        return ResultRecord(
            id=result_id,
            unit=placement.unit,
            build=placement.build,
            test=placement.test,
            subtest=placement.subtest,
            preimage=result_preimage(placement.unit_fields, placement.subtest),
            status=outcome.status,
            duration=outcome.duration,
            attempts=[attempt],
            imported_from=self.imported_from,
        )


@dataclass(frozen=True)
class ImportReport:
    imported: Mapping[Status, int]
    """New results written, by status."""
    attempts_added: int
    """Results already stored from another source, given the imported attempt beside theirs."""
    already_stored: int
    """Results whose imported attempt the store already held: nothing written."""
    not_desired: tuple[str, ...]
    incomplete: tuple[str, ...]
    duplicates: tuple[str, ...]
    notes: tuple[str, ...] = ()


def write_staged(
    staged: StagedImport, store: ResultStore, *, notes: Iterable[str] = ()
) -> ImportReport:
    """Write what `staged` holds that the store lacks; returns what was done."""
    try:
        fresh: list[ResultRecord] = []
        extra: list[ResultRecord] = []
        already = 0
        for record in staged.results.values():
            stored = store.get_result(record.id)
            if stored is None:
                fresh.append(record)
            elif all(attempt in stored.attempts for attempt in record.attempts):
                already += 1
            else:
                extra.append(record)
        to_write = fresh + extra
        needed = {address for record in to_write for address in staged.log_refs[record.id]}
        # Logs first, then builds, then results: a result never names a log that is not there.
        for address in sorted(needed):
            store.put_log(staged.logs[address])
        for build in {record.build for record in to_write}:
            store.put_build(staged.builds[build])
        store.put_results(to_write)
    except OSError as exc:
        raise StoreError(
            f"cannot write the store: {exc}", hint="fix the store, then import again"
        ) from exc
    return ImportReport(
        imported=Counter(record.status for record in fresh),
        attempts_added=len(extra),
        already_stored=already,
        not_desired=tuple(staged.not_desired),
        incomplete=tuple(staged.incomplete),
        duplicates=tuple(staged.duplicates),
        notes=tuple(notes),
    )


def render_report(report: ImportReport, *, source: str) -> str:
    imported = sum(report.imported.values())
    by_status = ", ".join(
        f"{report.imported[status]} {status.value}"
        for status in Status
        if report.imported.get(status)
    )
    lines = [f"{source}: {imported} results imported" + (f" ({by_status})" if by_status else "")]
    if report.attempts_added:
        lines.append(f"{report.attempts_added} already stored from another source: attempt added")
    lines.append(f"{report.already_stored} already stored (unchanged)")
    lines.append(f"{len(report.not_desired)} skipped as not desired")
    for key in report.not_desired[:20]:
        lines.append(f"  not desired: {key}")
    if len(report.not_desired) > 20:
        lines.append(f"  ... and {len(report.not_desired) - 20} more")
    if report.incomplete:
        lines.append(f"{len(report.incomplete)} not imported: still in progress or not started")
    if report.duplicates:
        lines.append(f"{len(report.duplicates)} reported twice: the first report kept")
    lines.extend(report.notes)
    return "\n".join(lines) + "\n"
