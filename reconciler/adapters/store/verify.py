"""`reconciler store verify`: every way the files, the index and the logs can disagree.

Files are walked in id order and merge-joined with the index rows read in the same order, so a
store of millions of results is checked holding one shard's file names and one row at a time.
Each problem is one line naming the file (relative to the store root) and what is wrong with it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.store.layout import (
    CorruptRecord,
    StoreLayout,
    decode_log,
    id_from_record_path,
    load_record,
)
from reconciler.adapters.store.schema import ERROR_PARAM, build_row, result_row
from reconciler.core.identity import identity_of
from reconciler.model.errors import StoreError
from reconciler.model.results import BuildRecord, ResultRecord

_UNITS_FROM_RESULTS = """
SELECT unit, sum(status <> :error), sum(status = :error),
       total(CASE WHEN status <> :error THEN duration END),
       count(CASE WHEN status <> :error THEN duration END),
       sum(status = :pass), sum(status = :fail), sum(status = :skip), sum(status = :timeout)
FROM results GROUP BY unit ORDER BY unit
"""

_DURATIONS_FROM_RESULTS = """
SELECT test, subtest, total(duration), count(duration)
FROM results WHERE status <> :error AND duration IS NOT NULL
GROUP BY test, subtest ORDER BY test, subtest
"""


@dataclass(frozen=True)
class _FileEntry:
    id: str
    row: tuple[object, ...] | None
    """The index row the file implies; None when the file itself is broken (already reported)."""


class _Verifier:
    def __init__(self, connection: sqlite3.Connection, layout: StoreLayout) -> None:
        self.connection = connection
        self.layout = layout
        self.problems: list[str] = []
        self.logs: dict[str, str] = {}
        """Log hash -> the first record that references it."""

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.layout.root))

    def record_files(
        self, model: type[ResultRecord] | type[BuildRecord], paths: Iterator[Path]
    ) -> Iterator[_FileEntry]:
        for path in paths:
            name = self.relative(path)
            claimed = id_from_record_path(path)
            if claimed is None:
                self.problems.append(f"{name}: not a record file name (<sha256>.json)")
                continue
            if model is ResultRecord and path.parent.name != claimed[:2]:
                self.problems.append(f"{name}: in the wrong directory (belongs in {claimed[:2]}/)")
                continue
            try:
                record = load_record(model, path)
            except CorruptRecord as exc:
                self.problems.append(f"{name}: {exc.reason}")
                yield _FileEntry(claimed, None)
                continue
            except OSError as exc:
                self.problems.append(f"{name}: unreadable: {exc.strerror}")
                yield _FileEntry(claimed, None)
                continue
            if record.id != claimed:
                self.problems.append(f"{name}: holds record {record.id}")
                yield _FileEntry(claimed, None)
                continue
            expected = identity_of(record.preimage).hex
            if expected != record.id:
                self.problems.append(
                    f"{name}: id is not the hash of its preimage (the preimage hashes to "
                    f"{expected}); the file was edited"
                )
            self.note_logs(record, name)
            row = result_row(record) if isinstance(record, ResultRecord) else build_row(record)
            yield _FileEntry(claimed, row)

    def note_logs(self, record: ResultRecord | BuildRecord, name: str) -> None:
        if isinstance(record, ResultRecord):
            hashes = [attempt.log for attempt in record.attempts]
        else:
            hashes = [record.log]
        for log_hash in hashes:
            if log_hash is not None:
                self.logs.setdefault(log_hash, name)

    def join(
        self,
        files: Iterator[_FileEntry],
        rows: Iterator[tuple[object, ...]],
        *,
        path_of: Callable[[str], Path],
    ) -> None:
        """Merge-join files and index rows, both in id order."""
        entry = next(files, None)
        row = next(rows, None)
        while entry is not None or row is not None:
            if row is None or (entry is not None and entry.id < str(row[0])):
                assert entry is not None
                if entry.row is not None:
                    self.problems.append(f"{self.relative(path_of(entry.id))}: not in the index")
                entry = next(files, None)
            elif entry is None or str(row[0]) < entry.id:
                name = self.relative(path_of(str(row[0])))
                self.problems.append(f"{name}: in the index but the file is missing")
                row = next(rows, None)
            else:
                if entry.row is not None and entry.row != tuple(row):
                    self.problems.append(
                        f"{self.relative(path_of(entry.id))}: index row {tuple(row)} differs "
                        f"from the file {entry.row}"
                    )
                entry = next(files, None)
                row = next(rows, None)

    def units(self) -> None:
        computed = self.connection.execute(_UNITS_FROM_RESULTS, ERROR_PARAM)
        stored = self.connection.execute(
            "SELECT unit, verdicts, errors, duration_sum, timed, "
            "passed, failed, skipped, timed_out FROM units ORDER BY unit"
        )
        want = next(computed, None)
        have = next(stored, None)
        while want is not None or have is not None:
            if want is not None and (have is None or want[0] < have[0]):
                self.problems.append(f"unit {want[0]}: has results but no units row")
                want = next(computed, None)
            elif have is not None and (want is None or have[0] < want[0]):
                self.problems.append(f"unit {have[0]}: units row but no results")
                have = next(stored, None)
            elif want is not None and have is not None:
                if not _same_aggregate(want[1:5], have[1:5]):
                    self.problems.append(
                        f"unit {want[0]}: index counts (verdicts, errors, seconds, timed) "
                        f"{tuple(have[1:5])} but its results give {tuple(want[1:5])}"
                    )
                if tuple(want[5:]) != tuple(have[5:]):
                    self.problems.append(
                        f"unit {want[0]}: index verdict counts (pass, fail, skip, timeout) "
                        f"{tuple(have[5:])} but its results give {tuple(want[5:])}"
                    )
                want = next(computed, None)
                have = next(stored, None)

    def tests(self) -> None:
        computed = {
            test: (seconds, timed)
            for test, seconds, timed in self.connection.execute(
                "SELECT test, total(duration_sum), sum(timed) FROM units GROUP BY test "
                "HAVING sum(timed) > 0"
            )
        }
        stored = {
            test: (seconds, timed)
            for test, seconds, timed in self.connection.execute(
                "SELECT test, duration_sum, timed FROM tests"
            )
        }
        for test in sorted(set(computed) | set(stored)):
            want, have = computed.get(test), stored.get(test)
            if want is None or have is None or not _same_aggregate(want, have):
                self.problems.append(
                    f"test {test}: index durations (seconds, timed) {have} but units give {want}"
                )

    def durations(self) -> None:
        """Per-subtest duration sums against a regrouping of the results (sorted streams, so
        a farm-sized table is compared one row at a time)."""
        computed = self.connection.execute(_DURATIONS_FROM_RESULTS, ERROR_PARAM)
        stored = self.connection.execute(
            "SELECT test, subtest, duration_sum, timed FROM durations ORDER BY test, subtest"
        )
        want = next(computed, None)
        have = next(stored, None)
        while want is not None or have is not None:
            if want is not None and (have is None or want[:2] < have[:2]):
                self.problems.append(
                    f"test {want[0]} subtest {want[1]}: timed results but no durations row"
                )
                want = next(computed, None)
            elif have is not None and (want is None or have[:2] < want[:2]):
                self.problems.append(
                    f"test {have[0]} subtest {have[1]}: durations row but no timed results"
                )
                have = next(stored, None)
            elif want is not None and have is not None:
                if not _same_aggregate(want[2:], have[2:]):
                    self.problems.append(
                        f"test {want[0]} subtest {want[1]}: index durations (seconds, timed) "
                        f"{tuple(have[2:])} but its results give {tuple(want[2:])}"
                    )
                want = next(computed, None)
                have = next(stored, None)

    def log_files(self) -> None:
        for log_hash, name in sorted(self.logs.items()):
            path = self.layout.log_path(log_hash)
            try:
                decode_log(path, log_hash)
            except StoreError as exc:
                self.problems.append(f"{name}: {self.relative(path)}: {exc.message}")


def _same_aggregate(want: Sequence[float | int], have: Sequence[float | int]) -> bool:
    """Counts must match exactly; summed seconds only to rounding (sums ran in other orders)."""
    for left, right in zip(want, have, strict=True):
        if isinstance(left, float) or isinstance(right, float):
            if not math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-6):
                return False
        elif left != right:
            return False
    return True


def verify_index(connection: sqlite3.Connection, layout: StoreLayout) -> list[str]:
    verifier = _Verifier(connection, layout)
    # One read transaction, so the index is checked as of one moment.
    connection.execute("BEGIN")
    try:
        verifier.join(
            verifier.record_files(ResultRecord, layout.iter_result_files()),
            connection.execute(
                "SELECT id, unit, build, test, subtest, status, duration FROM results ORDER BY id"
            ),
            path_of=layout.result_path,
        )
        verifier.join(
            verifier.record_files(BuildRecord, layout.iter_build_files()),
            connection.execute(
                "SELECT id, status, source_tree, image_hash FROM builds ORDER BY id"
            ),
            path_of=layout.build_path,
        )
        verifier.units()
        verifier.tests()
        verifier.durations()
    finally:
        if connection.in_transaction:
            connection.execute("COMMIT")
    verifier.log_files()
    return verifier.problems
