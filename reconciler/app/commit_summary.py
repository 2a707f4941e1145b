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
    """(branch, commit, subject, profile, counts) for every branch commit and profile, newest
    first. Slots of several harnesses on one commit and profile add up to one row."""
    by_row: dict[tuple[str, str, str], tuple[str, Counter[str]]] = {}
    for slot in desired.slots:
        if slot.origin.kind is not OriginKind.BRANCH:
            continue
        key = (slot.origin.name, slot.commit.commit, slot.profile)
        counts = by_row.setdefault(key, (slot.commit.subject, Counter()))[1]
        for unit in slot.units:
            stored = statuses_of_unit(unit.unit)
            for subtest in unit.subtests:
                status = stored.get(subtest)
                counts[status.value if status is not None else "pending"] += 1
    rows = [
        (branch, commit, subject, profile, counts)
        for (branch, commit, profile), (subject, counts) in by_row.items()
    ]
    rows.sort(key=lambda row: (row[0], -_time(desired, row[1]), row[3]))
    return rows


def _time(desired: DesiredState, commit: str) -> int:
    return next(s.commit.committed_at for s in desired.slots if s.commit.commit == commit)


def render_commit_summary(rows: list[tuple[str, str, str, str, Counter[str]]]) -> str:
    width = max([12, *(len(row[0]) for row in rows)])
    profile_width = max([10, *(len(row[3]) for row in rows)])
    lines = [
        f"{'BRANCH':<{width}} {'COMMIT':<12} {'PROFILE':<{profile_width}} "
        + " ".join(f"{c.upper():>7}" for c in COLUMNS)
        + "  SUBJECT"
    ]
    for branch, commit, subject, profile, counts in rows:
        cells = " ".join(f"{counts.get(c, 0):>7}" for c in COLUMNS)
        lines.append(
            f"{branch:<{width}} {commit[:12]:<12} {profile:<{profile_width}} {cells}"
            f"  {subject[:60]}"
        )
    return "\n".join(lines) + "\n"
