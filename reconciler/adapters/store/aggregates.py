"""Per-unit verdict counts and per-unit result listings for the query commands.

`log` over a branch window sums the counts of every (commit, profile) it shows: at farm scale
500 commits x ~170 test files, i.e. ~85,000 units holding ~6.5M results. Grouping those result
rows on every query costs seconds; the `units` table already keeps one row per unit with its
counts maintained on every write (see `schema.UNIT_AGGREGATE` and `index._apply_delta`), so
this module reads those rows, and only reads subtest rows for the few units whose stored
results do not match what is desired (partially run, or holding subtests no longer asked for).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

from reconciler.adapters.store.queries import StoredResult, results_for_unit
from reconciler.adapters.store.snapshot import MAX_PARAMETERS, select_where_in

UnitCounts = tuple[int, int, int, int, int, float, int, int]
"""(passed, failed, skipped, timed_out, errors, duration_sum, timed, stored) of one unit:
`duration_sum` and `timed` (how many verdicts carry a duration; zero means unknown, not zero)
cover verdicts only, as an infrastructure error's duration says nothing about the test;
`stored` is every result the unit holds. A plain tuple, as SQLite returns it: building 85,000
named objects for a 500-commit log cost as much as reading the rows."""

_UNIT_COUNTS = (
    "SELECT unit, passed, failed, skipped, timed_out, errors, duration_sum, timed, "
    "verdicts + errors FROM units"
)


def unit_counts(connection: sqlite3.Connection, units: Collection[str]) -> dict[str, UnitCounts]:
    """The counts of each of `units` the index holds anything for; absent units hold nothing."""
    counts: dict[str, UnitCounts] = {}
    with _read_transaction(connection):
        for rows in select_where_in(connection, _UNIT_COUNTS, "unit", units):
            counts.update((row[0], row[1:]) for row in rows)
    return counts


SummedCounts = tuple[int, int, int, int, int, int, float, int, int]
"""Over a group of units: (passed, failed, skipped, timed_out, errors, pending, duration_sum,
timed, mismatched), where `pending` is the desired subtest count of units holding nothing and
`mismatched` counts units holding something but not as many results as desired subtests
(their subtests must be read one by one to count them right)."""

# Summed in SQL: a 500-commit log ships 500 rows to Python instead of 85,000 (measured: the
# row transfer alone was 0.11-0.16 s, the whole of this 0.10 s).
_SUMMED = """
WITH wanted(unit, n) AS (VALUES {values})
SELECT total(u.passed), total(u.failed), total(u.skipped), total(u.timed_out), total(u.errors),
       total(CASE WHEN u.unit IS NULL THEN w.n END), total(u.duration_sum), total(u.timed),
       total(u.unit IS NOT NULL AND u.verdicts + u.errors <> w.n)
FROM wanted AS w LEFT JOIN units AS u ON u.unit = w.unit
"""
_PAIRS_PER_QUERY = MAX_PARAMETERS // 2


def summed_counts(
    connection: sqlite3.Connection, groups: Sequence[Sequence[tuple[str, int]]]
) -> list[SummedCounts]:
    """For each group of (unit, desired subtest count), the sums of its units' counts."""
    sums: list[SummedCounts] = []
    with _read_transaction(connection):
        for group in groups:
            total = [0.0] * 9
            for start in range(0, len(group), _PAIRS_PER_QUERY):
                chunk = group[start : start + _PAIRS_PER_QUERY]
                query = _SUMMED.format(values=",".join("(?,?)" for _ in chunk))
                params = [value for pair in chunk for value in pair]
                row = connection.execute(query, params).fetchone()
                total = [left + right for left, right in zip(total, row, strict=True)]
            passed, failed, skipped, timed_out, errors, pending, seconds, timed, odd = total
            sums.append(
                (
                    int(passed),
                    int(failed),
                    int(skipped),
                    int(timed_out),
                    int(errors),
                    int(pending),
                    seconds,
                    int(timed),
                    int(odd),
                )
            )
    return sums


def results_for_units(
    connection: sqlite3.Connection, units: Collection[str]
) -> dict[str, list[StoredResult]]:
    """Every indexed result of each of `units`, read in one transaction, ordered by subtest.

    One query per unit over the covering `results_by_unit` index: a commit's ~170 units and
    ~13,000 results take a few milliseconds, and nothing but these rows is read.
    """
    with _read_transaction(connection):
        return {unit: results_for_unit(connection, unit) for unit in sorted(units)}


@contextmanager
def _read_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: counts must not be read half before and half after a write."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        if connection.in_transaction:
            connection.execute("COMMIT")
