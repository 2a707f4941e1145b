"""Building an index from the record files, and the bulk writes a build shares with importers.

A build goes into a temp database next to the real one, with no journal and no syncs (on any
failure the temp file is simply deleted), secondary indexes created after the load, and is then
renamed into place, so readers see the old index or the new one, never a half-built one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from reconciler.adapters.store.atomic import fsync_directory, store_write_error
from reconciler.adapters.store.layout import (
    CorruptRecord,
    StoreLayout,
    id_from_record_path,
    load_record,
)
from reconciler.adapters.store.schema import (
    DURATION_AGGREGATE,
    ERROR_PARAM,
    INDEXES,
    INSERT_RESULT,
    SCHEMA_VERSION,
    TABLES,
    UNIT_AGGREGATE,
    ResultRow,
    build_row,
    result_row,
    tune,
    wrapped_errors,
)
from reconciler.model.results import BuildRecord, ResultRecord

log = logging.getLogger(__name__)

RecordT = TypeVar("RecordT", ResultRecord, BuildRecord)


@dataclass(frozen=True)
class ReindexCounts:
    results: int
    builds: int
    units: int
    skipped: int
    """Record files left out because they cannot be read, parsed, or are misnamed (`verify`
    lists them)."""


def insert_rows(connection: sqlite3.Connection, rows: Iterable[ResultRow]) -> int:
    """Insert rows and record their units in `temp.affected_units` for `refresh_aggregates`."""
    connection.execute(
        "CREATE TEMP TABLE IF NOT EXISTS affected_units "
        "(unit TEXT PRIMARY KEY, build TEXT NOT NULL, test TEXT NOT NULL) WITHOUT ROWID"
    )
    connection.execute("DELETE FROM temp.affected_units")
    units: dict[str, tuple[str, str]] = {}
    count = 0

    def noting_units() -> Iterator[ResultRow]:
        nonlocal count
        for row in rows:
            units[row[1]] = (row[2], row[3])
            count += 1
            yield row

    connection.executemany(INSERT_RESULT, noting_units())
    connection.executemany(
        "INSERT INTO temp.affected_units VALUES (?, ?, ?)",
        ((unit, build, test) for unit, (build, test) in units.items()),
    )
    return count


def refresh_aggregates(connection: sqlite3.Connection) -> None:
    """Recompute the units in `temp.affected_units`, then the tests they belong to and those
    tests' per-subtest durations."""
    connection.execute("DELETE FROM units WHERE unit IN (SELECT unit FROM temp.affected_units)")
    connection.execute(f"INSERT INTO units {UNIT_AGGREGATE}", ERROR_PARAM)
    affected_tests = "SELECT DISTINCT test FROM temp.affected_units"
    connection.execute(f"DELETE FROM tests WHERE test IN ({affected_tests})")  # noqa: S608
    connection.execute(
        "INSERT INTO tests SELECT test, total(duration_sum), sum(timed) FROM units "  # noqa: S608
        f"WHERE test IN ({affected_tests}) GROUP BY test HAVING sum(timed) > 0"
    )
    # Whole tests, not just the inserted (test, subtest) pairs: a replaced row's old duration
    # is gone by now, and results has no (test, subtest) index to find the pair's other rows.
    connection.execute(f"DELETE FROM durations WHERE test IN ({affected_tests})")  # noqa: S608
    connection.execute(f"INSERT INTO durations {DURATION_AGGREGATE}", ERROR_PARAM)


def remove_database(path: Path) -> None:
    """Delete a database file and its journal files (a stale WAL must never outlive its DB)."""
    for candidate in (path, *_sidecars(path)):
        try:
            candidate.unlink(missing_ok=True)
        except OSError as exc:
            raise store_write_error(candidate, exc) from exc


def _sidecars(path: Path) -> tuple[Path, ...]:
    return tuple(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))


def rebuild(layout: StoreLayout, *, first_generation: int) -> ReindexCounts:
    """Build the index of `layout` from its files and put it in place."""
    temp_path, counts = build_index(layout, first_generation=first_generation)
    install_index(temp_path, layout)
    return counts


def build_index(layout: StoreLayout, *, first_generation: int) -> tuple[Path, ReindexCounts]:
    """A complete index of the files in a temp database next to the real one."""
    try:
        layout.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store_write_error(layout.root, exc) from exc
    temp_path = layout.root / f".{layout.index_path.name}.{os.getpid()}.tmp"
    remove_database(temp_path)
    try:
        with wrapped_errors(temp_path, doing="building the index"):
            counts = _fill(temp_path, layout, first_generation=first_generation)
        fd = os.open(temp_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        remove_database(temp_path)
        raise store_write_error(temp_path, exc) from exc
    except BaseException:
        remove_database(temp_path)
        raise
    return temp_path, counts


def _fill(temp_path: Path, layout: StoreLayout, *, first_generation: int) -> ReindexCounts:
    connection = sqlite3.connect(temp_path, isolation_level=None)
    try:
        # No journal and no syncs while building: on any failure the temp file is deleted.
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        tune(connection)
        for statement in TABLES.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("schema_version", SCHEMA_VERSION), ("generation", first_generation)],
        )
        skipped = _Skipped()
        results = insert_rows(
            connection,
            (result_row(r) for r in skipped.readable(ResultRecord, layout.iter_result_files())),
        )
        builds = connection.executemany(
            "INSERT OR REPLACE INTO builds VALUES (?, ?, ?, ?)",
            (build_row(b) for b in skipped.readable(BuildRecord, layout.iter_build_files())),
        ).rowcount
        # Secondary indexes after the load: one sort each instead of random inserts.
        for statement in INDEXES.split(";"):
            if statement.strip():
                connection.execute(statement)
        refresh_aggregates(connection)
        connection.execute("COMMIT")
        (units,) = connection.execute("SELECT count(*) FROM units").fetchone()
        connection.execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()
    return ReindexCounts(results=results, builds=builds, units=units, skipped=skipped.count)


class _Skipped:
    """Counts record files a rebuild leaves out; `verify` names each of them."""

    def __init__(self) -> None:
        self.count = 0

    def readable(self, model: type[RecordT], paths: Iterator[Path]) -> Iterator[RecordT]:
        for path in paths:
            try:
                record = load_record(model, path)
            except (CorruptRecord, OSError) as exc:
                log.warning("not indexed: %s", exc)
                self.count += 1
                continue
            claimed = id_from_record_path(path)
            in_place = model is BuildRecord or path.parent.name == (claimed or "")[:2]
            if record.id != claimed or not in_place:
                log.warning("not indexed: %s is misnamed or misplaced", path)
                self.count += 1
                continue
            yield record


def install_index(temp_path: Path, layout: StoreLayout) -> None:
    """Rename a built index into place; stale WAL/SHM files of the old one go first, or SQLite
    would replay the old database's log into the new one."""
    path = layout.index_path
    try:
        for sidecar in _sidecars(path):
            sidecar.unlink(missing_ok=True)
        os.replace(temp_path, path)
        fsync_directory(path.parent)
    except OSError as exc:
        remove_database(temp_path)
        raise store_write_error(path, exc) from exc
