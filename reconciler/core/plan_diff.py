"""What a spec change adds, removes and reuses: two plans against one store, compared.

A reviewer of a pull request on the spec repo wants to know what merging it will schedule, not
the whole backlog of the farm. Both revisions are planned against the same store snapshot, so
every difference between the two plans is caused by the spec change itself. Totals count
distinct identities (work two branches share is counted once); rows are per (origin, profile)
and count what each asked for, as the plan's own per-origin rows do. Each head unit that must
run is explained by its nearest known identity (`nearest_identity`).

Pure: desired states, plans and a snapshot in, a `PlanDiff` out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.core.nearest_identity import InputChange, Nearest, NearestIdentities
from reconciler.model.desired import (
    BlockedWork,
    DesiredState,
    DesiredUnit,
    Origin,
    StoreSnapshot,
)
from reconciler.model.plan import RUN_REASONS, Estimates, Plan, Reason


@dataclass(frozen=True)
class UnitChange:
    """One head unit that must run, and why it is not reused."""

    origin: Origin
    commit: str
    subject: str
    profile: str
    harness: str
    test: str
    unit: str
    reason: str
    differences: tuple[InputChange, ...]
    nearest: Nearest | None
    to_run: int
    estimated_seconds: float

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.phrase for d in self.differences))


@dataclass(frozen=True)
class DiffCounts:
    """Distinct identities: `added`/`removed` between the desired states; `added_to_run` the
    added ones the store lacks; `run`/`reused` the head plan's totals."""

    added: int = 0
    added_to_run: int = 0
    removed: int = 0
    run: int = 0
    reused: int = 0


@dataclass(frozen=True)
class DiffRow:
    """One (origin, profile): what it gains and loses. Added and removed count identities new to
    (or gone from) the whole desired state, so a branch added at an already-tested tree costs
    nothing, and dropping a branch another still covers frees nothing."""

    origin: Origin
    profile: str
    builds_added: int = 0
    builds_removed: int = 0
    results_added: int = 0
    results_added_to_run: int = 0
    results_removed: int = 0
    results_run: int = 0
    results_reused: int = 0
    estimated_seconds: float = 0.0
    """Of the added work that must run, builds included."""


@dataclass(frozen=True)
class PlanDiff:
    base: str
    head: str
    builds: DiffCounts
    results: DiffCounts
    estimated_seconds: float
    """Machine time of the added work that must run: its subtests and its builds."""
    rows: tuple[DiffRow, ...]
    changes: tuple[UnitChange, ...]
    """Head units that must run, in head plan order (newest commit first)."""
    estimates: Estimates
    """What the head plan assumed where the store had no durations."""
    blocked: tuple[BlockedWork, ...] = ()
    """What the head specs ask for but cannot be planned, with why."""


@dataclass
class _RowTally:
    builds_added: set[str]
    builds_removed: set[str]
    builds_added_to_run: set[str]
    results_added: int = 0
    results_added_to_run: int = 0
    results_removed: int = 0
    results_run: int = 0
    results_reused: int = 0
    seconds: float = 0.0


def _units_by_id(desired: DesiredState) -> dict[str, DesiredUnit]:
    return {unit.unit: unit for slot in desired.slots for unit in slot.units}


def _added_subtests(unit: DesiredUnit, before: DesiredUnit | None) -> frozenset[str]:
    if before is None:
        return frozenset(unit.subtests)
    if before.subtests == unit.subtests:
        return frozenset()
    return frozenset(unit.subtests) - frozenset(before.subtests)


def _changes(head_plan: Plan, nearest: NearestIdentities) -> tuple[UnitChange, ...]:
    slots = {
        (slot.origin, slot.commit.commit, slot.profile, slot.harness): slot
        for slot in nearest.head_desired.slots
    }
    units = {unit.unit: unit for slot in nearest.head_desired.slots for unit in slot.units}
    changes = []
    for item in head_plan.items:
        if item.reason not in RUN_REASONS:
            continue
        slot = slots[(item.origin, item.commit, item.profile, item.harness)]
        explanation = nearest.explain(slot, units[item.unit])
        changes.append(
            UnitChange(
                origin=item.origin,
                commit=item.commit,
                subject=item.subject,
                profile=item.profile,
                harness=item.harness,
                test=item.test,
                unit=item.unit,
                reason=explanation.reason,
                differences=explanation.differences,
                nearest=explanation.nearest,
                to_run=len(item.to_run),
                estimated_seconds=item.estimated_seconds,
            )
        )
    return tuple(changes)


def diff_plans(
    *,
    base: str,
    head: str,
    base_desired: DesiredState,
    base_plan: Plan,
    head_desired: DesiredState,
    head_plan: Plan,
    snapshot: StoreSnapshot,
) -> PlanDiff:
    """Compare two plans made against `snapshot`; `base` and `head` label the revisions."""
    estimates = head_plan.estimates
    base_units = _units_by_id(base_desired)
    head_units = _units_by_id(head_desired)
    base_builds = {slot.build.id for slot in base_desired.slots}
    head_builds = {slot.build.id for slot in head_desired.slots}
    builds_to_run = {b.build for b in head_plan.builds if b.reason in RUN_REASONS}
    added_builds = head_builds - base_builds

    tallies: dict[tuple[Origin, str], _RowTally] = {}

    def row(origin: Origin, profile: str) -> _RowTally:
        return tallies.setdefault((origin, profile), _RowTally(set(), set(), set()))

    for slot in head_desired.slots:
        if slot.build.id in added_builds:
            tally = row(slot.origin, slot.profile)
            tally.builds_added.add(slot.build.id)
            if slot.build.id in builds_to_run:
                tally.builds_added_to_run.add(slot.build.id)
    for slot in base_desired.slots:
        if slot.build.id not in head_builds:
            row(slot.origin, slot.profile).builds_removed.add(slot.build.id)

    results_added = results_added_to_run = 0
    added_seconds = 0.0
    counted: set[str] = set()
    for item in head_plan.items:
        added = _added_subtests(head_units[item.unit], base_units.get(item.unit))
        added_to_run = sum(1 for s in item.to_run if s in added)
        seconds = item.estimated_seconds * added_to_run / len(item.to_run) if item.to_run else 0.0
        tally = row(item.origin, item.profile)
        tally.results_added += len(added)
        tally.results_added_to_run += added_to_run
        tally.results_run += len(item.to_run)
        if item.reason is not Reason.BLOCKED:
            tally.results_reused += item.subtests_total - len(item.to_run)
        tally.seconds += seconds
        if item.unit not in counted:
            counted.add(item.unit)
            results_added += len(added)
            results_added_to_run += added_to_run
            added_seconds += seconds

    results_removed = 0
    counted.clear()
    for item in base_plan.items:
        # Subtests base asked for that head does not: `_added_subtests` read the other way.
        gone = _added_subtests(base_units[item.unit], head_units.get(item.unit))
        row(item.origin, item.profile).results_removed += len(gone)
        if item.unit not in counted:
            counted.add(item.unit)
            results_removed += len(gone)

    added_builds_to_run = added_builds & builds_to_run
    rows = tuple(
        DiffRow(
            origin=origin,
            profile=profile,
            builds_added=len(t.builds_added),
            builds_removed=len(t.builds_removed),
            results_added=t.results_added,
            results_added_to_run=t.results_added_to_run,
            results_removed=t.results_removed,
            results_run=t.results_run,
            results_reused=t.results_reused,
            estimated_seconds=t.seconds + len(t.builds_added_to_run) * estimates.build_seconds,
        )
        for (origin, profile), t in sorted(
            tallies.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])
        )
    )
    totals = head_plan.totals
    return PlanDiff(
        base=base,
        head=head,
        builds=DiffCounts(
            added=len(added_builds),
            added_to_run=len(added_builds_to_run),
            removed=len(base_builds - head_builds),
            run=totals.builds_run,
            reused=totals.builds_reused,
        ),
        results=DiffCounts(
            added=results_added,
            added_to_run=results_added_to_run,
            removed=results_removed,
            run=totals.results_run,
            reused=totals.results_reused,
        ),
        estimated_seconds=added_seconds + len(added_builds_to_run) * estimates.build_seconds,
        rows=rows,
        changes=_changes(head_plan, NearestIdentities(base_desired, head_desired, snapshot)),
        estimates=estimates,
        blocked=head_plan.blocked,
    )


def reasons_by_count(changes: Iterable[UnitChange]) -> list[tuple[str, list[UnitChange]]]:
    """Changes grouped by reason, the largest group first (ties by reason), for renderers."""
    groups: dict[str, list[UnitChange]] = {}
    for change in changes:
        groups.setdefault(change.reason, []).append(change)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
