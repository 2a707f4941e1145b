"""A short per-commit summary after an apply: for each branch commit and profile, its counts.

The full query commands (`log`, `show`) come with the results issue; this is the few lines a
person wants after `apply` to see that the break and the fix landed where expected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

from reconciler.model.desired import DesiredState, OriginKind
from reconciler.model.results import Status

COLUMNS = ("pass", "fail", "skip", "timeout", "error", "pending")


def commit_counts(
    desired: DesiredState, *, statuses_of_unit: Callable[[str], Mapping[str, Status]]
) -> list[tuple[str, str, str, str, Counter[str]]]:
    """(branch, commit, subject, profile, counts) for every branch slot, newest first."""
    rows = []
    for slot in desired.slots:
        if slot.origin.kind is not OriginKind.BRANCH:
            continue
        counts: Counter[str] = Counter()
        for unit in slot.units:
            stored = statuses_of_unit(unit.unit)
            for subtest in unit.subtests:
                status = stored.get(subtest)
                counts[status.value if status is not None else "pending"] += 1
        rows.append(
            (slot.origin.name, slot.commit.commit, slot.commit.subject, slot.profile, counts)
        )
    rows.sort(key=lambda row: (row[0], -_time(desired, row[1]), row[3]))
    return rows


def _time(desired: DesiredState, commit: str) -> int:
    return next(s.commit.committed_at for s in desired.slots if s.commit.commit == commit)


def render_commit_summary(rows: list[tuple[str, str, str, str, Counter[str]]]) -> str:
    lines = [
        f"{'BRANCH':<12} {'COMMIT':<12} {'PROFILE':<10} "
        + " ".join(f"{c.upper():>7}" for c in COLUMNS)
        + "  SUBJECT"
    ]
    for branch, commit, subject, profile, counts in rows:
        cells = " ".join(f"{counts.get(c, 0):>7}" for c in COLUMNS)
        lines.append(f"{branch:<12} {commit[:12]:<12} {profile:<10} {cells}  {subject[:60]}")
    return "\n".join(lines) + "\n"
