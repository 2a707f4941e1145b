"""The store's SQLite index: derived from the record files, rebuilt whenever it cannot be trusted.

The planner asks "which of these ~10^5 units are stored, and how completely" on every reconcile;
answering that from millions of JSON files is impossible and from millions of subtest rows is
slow, so the index keeps one materialised row per unit (and per test file and per (test,
subtest), for duration estimates) next to the per-result rows. Files are the truth: a missing
index is built from them, a corrupt one (not a database, wrong schema, failing `quick_check`) is
deleted and rebuilt with a warning, and `reindex` rebuilds into a temp file that is renamed over
the old one, so readers never see a half-built index.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from reconciler.adapters.closing import Closing
from reconciler.adapters.store.aggregates import (
    SummedCounts,
    UnitCounts,
    results_for_units,
    summed_counts,
    unit_counts,
)
from reconciler.adapters.store.layout import StoreLayout
from reconciler.adapters.store.queries import (
    StoredResult,
    results_for_build,
    results_for_unit,
    subtest_durations,
)
from reconciler.adapters.store.rebuild import (
    ReindexCounts,
    build_index,
    insert_rows,
    install_index,
    rebuild,
    refresh_aggregates,
    remove_database,
)
from reconciler.adapters.store.schema import (
    INSERT_RESULT,
    SCHEMA_VERSION,
    ResultRow,
    build_row,
    bump_generation,
    connect,
    is_corruption,
    result_row,
    transaction,
    wrapped_errors,
)
from reconciler.adapters.store.snapshot import read_snapshot
from reconciler.adapters.store.verify import verify_index
from reconciler.model.desired import DesiredState, StoreSnapshot
from reconciler.model.errors import StoreError
from reconciler.model.results import BuildRecord, ResultRecord, Status

log = logging.getLogger(__name__)

_SELECT_RESULT = "SELECT id, unit, build, test, subtest, status, duration FROM results WHERE id = ?"
_UNIT_DELTA = """
INSERT INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (unit) DO UPDATE SET
    verdicts = verdicts + excluded.verdicts,
    errors = errors + excluded.errors,
    duration_sum = duration_sum + excluded.duration_sum,
    timed = timed + excluded.timed,
    passed = passed + excluded.passed,
    failed = failed + excluded.failed,
    skipped = skipped + excluded.skipped,
    timed_out = timed_out + excluded.timed_out
"""
# The order of the units table's per-verdict columns (passed, failed, skipped, timed_out).
_COUNTED_VERDICTS = (Status.PASS, Status.FAIL, Status.SKIP, Status.TIMEOUT)
_TEST_DELTA = """
INSERT INTO tests VALUES (?, ?, ?)
ON CONFLICT (test) DO UPDATE SET
    duration_sum = duration_sum + excluded.duration_sum,
    timed = timed + excluded.timed
"""

_DURATION_DELTA = """
INSERT INTO durations VALUES (?, ?, ?, ?)
ON CONFLICT (test, subtest) DO UPDATE SET
    duration_sum = duration_sum + excluded.duration_sum,
    timed = timed + excluded.timed
"""


class StoreIndex(Closing):
    """An open index. Use `StoreIndex.open`; close it (or use it as a context manager)."""

    def __init__(
        self,
        *,
        layout: StoreLayout,
        connection: sqlite3.Connection,
        rebuilt_reason: str | None,
    ) -> None:
        self.layout = layout
        self.path = layout.index_path
        self._connection = connection
        self.rebuilt_reason = rebuilt_reason
        """Why the index was (re)built when it was opened: None when it was used as found."""

    @classmethod
    def open(cls, layout: StoreLayout, *, quick_check: bool = True) -> StoreIndex:
        """Open the index of `layout`, building it from the files if it is missing or corrupt.

        `quick_check=False` skips SQLite's page-level check (linear in the index size) for
        short-lived read-only commands; corruption met later still raises StoreError.
        """
        path = layout.index_path
        if not path.exists():
            reason = "missing"
            log.info("store index %s is missing: building it from the record files", path)
        else:
            problem = _open_problem(path, quick_check=quick_check)
            if problem is None:
                with wrapped_errors(path, doing="opening"):
                    return cls(layout=layout, connection=connect(path), rebuilt_reason=None)
            # An index of an older schema is expected after an upgrade, not damage.
            kind = "outdated" if problem.startswith("schema version") else "corrupt"
            reason = f"{kind} ({problem})"
            log.warning("store index %s is %s: rebuilding it from the record files", path, reason)
            remove_database(path)
        counts = rebuild(layout, first_generation=0)
        log.info("store index %s rebuilt: %s", path, counts)
        with wrapped_errors(path, doing="opening"):
            return cls(layout=layout, connection=connect(path), rebuilt_reason=reason)

    def close(self) -> None:
        self._connection.close()

    @property
    def generation(self) -> int:
        """Incremented by every change: a cheap key for caching what was read from the index."""
        with wrapped_errors(self.path, doing="reading the generation"):
            row = self._connection.execute(
                "SELECT value FROM meta WHERE key = 'generation'"
            ).fetchone()
        return int(row[0])

    def snapshot(self, desired: DesiredState) -> StoreSnapshot:
        """What the planner needs to know about the units, builds and tests `desired` names."""
        with wrapped_errors(self.path, doing="reading a snapshot"):
            return read_snapshot(self._connection, desired)

    def verify(self) -> list[str]:
        """Every disagreement between files, index and logs; empty when the store is healthy."""
        with wrapped_errors(self.path, doing="verifying"):
            return verify_index(self._connection, self.layout)

    def add_results(self, records: Iterable[ResultRecord]) -> bool:
        """Index records as stored in files (already merged); True if anything changed.

        Aggregates are updated by delta, so a put costs the same whether its unit holds ten
        subtests or ten thousand.
        """
        return self.sync_results(records) > 0

    def sync_results(self, records: Iterable[ResultRecord], *, absent: Iterable[str] = ()) -> int:
        """Make the rows of `records` match them and drop the rows of the `absent` ids (whose
        files do not exist); returns how many rows were added, changed or dropped."""
        changed = 0
        connection = self._connection
        with wrapped_errors(self.path, doing="indexing results"), transaction(connection):
            for record in records:
                row = result_row(record)
                old = connection.execute(_SELECT_RESULT, (row[0],)).fetchone()
                if old == row:
                    continue
                connection.execute(INSERT_RESULT, row)
                if old is not None:
                    _apply_delta(connection, old, sign=-1)
                _apply_delta(connection, row, sign=1)
                changed += 1
            for result_id in absent:
                old = connection.execute(_SELECT_RESULT, (result_id,)).fetchone()
                if old is None:
                    continue
                connection.execute("DELETE FROM results WHERE id = ?", (result_id,))
                _apply_delta(connection, old, sign=-1)
                changed += 1
            if changed:
                bump_generation(connection)
        return changed

    def subtest_durations(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """Mean seconds of each (test, subtest) over its stored verdicts (every build and
        runtime); pairs with no timed verdict are left out, so callers fall back to the test's
        mean (`StoreSnapshot.mean_subtest_seconds`) or a default."""
        with wrapped_errors(self.path, doing="reading subtest durations"):
            return subtest_durations(self._connection, pairs)

    def results_for_build(self, build_id: str) -> list[StoredResult]:
        """The indexed results of one build, ordered by unit then subtest."""
        with wrapped_errors(self.path, doing="listing a build's results"):
            return results_for_build(self._connection, build_id)

    def results_for_unit(self, unit_id: str) -> list[StoredResult]:
        """The indexed results of one unit, ordered by subtest."""
        with wrapped_errors(self.path, doing="listing a unit's results"):
            return results_for_unit(self._connection, unit_id)

    def unit_counts(self, units: Collection[str]) -> dict[str, UnitCounts]:
        """Stored counts by status of each of `units` (absent: nothing stored), for queries."""
        with wrapped_errors(self.path, doing="reading unit counts"):
            return unit_counts(self._connection, units)

    def summed_counts(self, groups: Sequence[Sequence[tuple[str, int]]]) -> list[SummedCounts]:
        """Per group of (unit, desired subtest count): its units' counts summed (see
        `aggregates.SummedCounts`), for the query commands."""
        with wrapped_errors(self.path, doing="summing unit counts"):
            return summed_counts(self._connection, groups)

    def results_for_units(self, units: Collection[str]) -> dict[str, list[StoredResult]]:
        """The indexed results of each of `units`, read in one transaction."""
        with wrapped_errors(self.path, doing="listing units' results"):
            return results_for_units(self._connection, units)

    def builds_with_image(self, image_hash: str) -> list[str]:
        """Passed builds whose boot image has this sha256, sorted."""
        with wrapped_errors(self.path, doing="finding builds by image"):
            rows = self._connection.execute(
                "SELECT id FROM builds WHERE image_hash = ? AND status = 'pass' ORDER BY id",
                (image_hash,),
            ).fetchall()
        return [build for (build,) in rows]

    def add_build(self, record: BuildRecord) -> bool:
        row = build_row(record)
        connection = self._connection
        with wrapped_errors(self.path, doing="indexing a build"), transaction(connection):
            old = connection.execute(
                "SELECT id, status, source_tree, image_hash FROM builds WHERE id = ?", (row[0],)
            ).fetchone()
            if old == row:
                return False
            connection.execute("INSERT OR REPLACE INTO builds VALUES (?, ?, ?, ?)", row)
            bump_generation(connection)
        return True

    def bulk_insert_results(self, rows: Iterable[ResultRow]) -> int:
        """Fast path for importers and benchmarks: rows replace any with the same id, and the
        affected units are re-aggregated in one statement. Returns the number of rows."""
        connection = self._connection
        with wrapped_errors(self.path, doing="bulk indexing"), transaction(connection):
            count = insert_rows(connection, rows)
            refresh_aggregates(connection)
            bump_generation(connection)
        return count

    def reindex(self) -> ReindexCounts:
        """Rebuild from the files into a temp database and rename it into place."""
        try:
            # Continue the old count, so a cache keyed on generations never sees one reused.
            generation = self.generation + 1
        except StoreError:
            generation = 0  # the index being replaced is unreadable: reindex is the remedy
        temp_path, counts = build_index(self.layout, first_generation=generation)
        self.close()
        try:
            install_index(temp_path, self.layout)
        finally:
            with wrapped_errors(self.path, doing="reopening after reindex"):
                self._connection = connect(self.path)
        self.rebuilt_reason = None
        return counts


def _apply_delta(connection: sqlite3.Connection, row: ResultRow, *, sign: int) -> None:
    """Add (sign=1) or remove (sign=-1) one result's share of its unit, test and subtest
    aggregates."""
    _, unit, build, test, subtest, status, duration = row
    is_error = status == Status.ERROR.value
    # Errors never count towards durations: an ssh timeout says nothing about the test.
    timed = not is_error and duration is not None
    seconds = duration if timed and duration is not None else 0.0
    connection.execute(
        _UNIT_DELTA,
        (
            unit,
            build,
            test,
            sign * (not is_error),
            sign * is_error,
            sign * seconds,
            sign * timed,
            *(sign * (status == verdict.value) for verdict in _COUNTED_VERDICTS),
        ),
    )
    if timed:
        connection.execute(_TEST_DELTA, (test, sign * seconds, sign))
        connection.execute(_DURATION_DELTA, (test, subtest, sign * seconds, sign))
    if sign < 0:
        connection.execute(
            "DELETE FROM units WHERE unit = ? AND verdicts = 0 AND errors = 0", (unit,)
        )
        connection.execute("DELETE FROM tests WHERE test = ? AND timed = 0", (test,))
        connection.execute(
            "DELETE FROM durations WHERE test = ? AND subtest = ? AND timed = 0", (test, subtest)
        )


def _open_problem(path: Path, *, quick_check: bool) -> str | None:
    """Why the index at `path` cannot be used as it is, or None if it can.

    Only corruption and schema mismatch count: a locked or unreadable index is an
    infrastructure problem to report, never a reason to delete it.
    """
    connection: sqlite3.Connection | None = None
    try:
        connection = connect(path)
        if quick_check:
            verdict = connection.execute("PRAGMA quick_check").fetchall()
            if verdict != [("ok",)]:
                return f"quick_check: {verdict[0][0]}"
        try:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.OperationalError as exc:  # no meta table: not our database
            return f"not a store index: {exc}"
        if row is None or row[0] != SCHEMA_VERSION:
            return f"schema version {row[0] if row else None}, expected {SCHEMA_VERSION}"
        return None
    except sqlite3.Error as exc:
        if is_corruption(exc):
            return str(exc)
        raise StoreError(
            f"cannot open the store index: {exc}",
            where=str(path),
            hint="check its permissions and that no other process holds it locked",
        ) from exc
    finally:
        if connection is not None:
            connection.close()
