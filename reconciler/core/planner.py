"""The planner: desired identities minus stored ones, each planned item with its reason.

`plan(desired, snapshot)` is a pure function. It works per *unit* (one test file of one build,
runtime and harness revision): a unit whose stored verdict count equals its subtest count is
settled without looking at its subtests, so a matrix of millions of subtests costs one dict
lookup per test file. Only partial units are expanded to subtests, from the statuses the
snapshot carries for them.

Counts in `Totals` are of distinct identities (two branches at the same tree share the work);
the per-origin rows count what each branch or baseline asked for. A unit's identity includes
its build's, so units can only be shared between slots of the same build: deduplication looks
within a build, never across the whole matrix.

Each slot's part of the plan depends only on that slot, the snapshot entries of its units and
which units baselines ask for; a `PlanMemo` keeps those parts while the store generation stays
the same, so planning again after one new commit costs that commit's units.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from reconciler.model.desired import (
    DesiredSlot,
    DesiredState,
    DesiredUnit,
    Origin,
    OriginKind,
    StoreSnapshot,
)
from reconciler.model.plan import (
    REUSE_REASONS,
    RUN_REASONS,
    Estimates,
    OriginSummary,
    Plan,
    PlannedBuild,
    PlannedUnit,
    Reason,
    Totals,
)
from reconciler.model.results import BuildStatus, Status


@dataclass(frozen=True)
class _Counts:
    run: int = 0
    reused: int = 0
    from_baseline: int = 0
    blocked: int = 0
    seconds: float = 0.0

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(
            self.run + other.run,
            self.reused + other.reused,
            self.from_baseline + other.from_baseline,
            self.blocked + other.blocked,
            self.seconds + other.seconds,
        )


@dataclass(frozen=True)
class _SlotPart:
    items: tuple[PlannedUnit, ...]
    counts: _Counts
    per_unit: tuple[tuple[str, _Counts], ...]
    build_reason: Reason


@dataclass
class PlanMemo:
    """Slot parts of earlier plans, valid while the store generation and the baseline set hold."""

    validity: tuple[Hashable, ...] | None = None
    parts: dict[tuple[Hashable, ...], tuple[object, _SlotPart]] = field(default_factory=dict)

    def bind(self, validity: tuple[Hashable, ...]) -> None:
        if self.validity != validity:
            self.validity = validity
            self.parts.clear()


def _slot_order(slot: DesiredSlot) -> tuple[int, int, str, str, str, str]:
    # Age-major across branches: the newest commit anywhere first, then priority.
    return (
        -slot.commit.committed_at,
        -slot.priority,
        slot.commit.commit,
        str(slot.origin),
        slot.profile,
        slot.harness,
    )


def _unit_outcome(
    unit: DesiredUnit, snapshot: StoreSnapshot, *, baseline_units: frozenset[str]
) -> tuple[Reason, tuple[str, ...]]:
    """The reason for one unit and the subtests it still needs."""
    reason, to_run = _stored_outcome(unit, snapshot, baseline_units=baseline_units)
    if reason in RUN_REASONS and unit.unit in snapshot.same_image:
        return Reason.REUSED_SAME_IMAGE, ()
    return reason, to_run


def _stored_outcome(
    unit: DesiredUnit, snapshot: StoreSnapshot, *, baseline_units: frozenset[str]
) -> tuple[Reason, tuple[str, ...]]:
    summary = snapshot.units.get(unit.unit)
    if summary is None or summary.verdicts + summary.errors == 0:
        return Reason.MISSING, unit.subtests
    reused = Reason.REUSED_FROM_BASELINE if unit.unit in baseline_units else Reason.REUSED
    stored = snapshot.subtests.get(unit.unit)
    if stored is None:
        if summary.verdicts == len(unit.subtests):
            return reused, ()
        # The snapshot did not say which subtests are stored: run them all rather than guess.
        return Reason.MISSING, unit.subtests
    to_run = tuple(s for s in unit.subtests if stored.get(s, Status.ERROR) is Status.ERROR)
    if not to_run:
        return reused, ()
    if all(status is Status.ERROR for status in stored.values()):
        return Reason.ERROR_RETRY, to_run
    return Reason.PARTIAL, to_run


def _plan_slot(
    slot: DesiredSlot,
    snapshot: StoreSnapshot,
    *,
    baseline_units: frozenset[str],
    estimates: Estimates,
) -> _SlotPart:
    build_status = snapshot.builds.get(slot.build.id)
    build_failed = build_status is BuildStatus.FAIL
    mean_seconds = snapshot.mean_subtest_seconds
    items = []
    per_unit = []
    needs_build = False
    for unit in sorted(slot.units, key=lambda u: (-u.priority, u.test)):
        reason, to_run = _unit_outcome(unit, snapshot, baseline_units=baseline_units)
        if build_failed and reason in RUN_REASONS:
            reason, to_run = Reason.BLOCKED, ()
        seconds = len(to_run) * mean_seconds.get(unit.test, estimates.subtest_seconds)
        items.append(
            PlannedUnit(
                origin=slot.origin,
                commit=slot.commit.commit,
                subject=slot.commit.subject,
                committed_at=slot.commit.committed_at,
                profile=slot.profile,
                harness=slot.harness,
                group=unit.group,
                test=unit.test,
                unit=unit.unit,
                build=slot.build.id,
                reason=reason,
                subtests_total=len(unit.subtests),
                to_run=to_run,
                priority=slot.priority + unit.priority,
                estimated_seconds=seconds,
            )
        )
        blocked = len(unit.subtests) if reason is Reason.BLOCKED else 0
        reused = len(unit.subtests) - len(to_run) - blocked
        from_baseline = reused if reason is Reason.REUSED_FROM_BASELINE else 0
        per_unit.append((unit.unit, _Counts(len(to_run), reused, from_baseline, blocked, seconds)))
        needs_build = needs_build or bool(to_run)

    if build_failed:
        build_reason = Reason.BLOCKED
    elif build_status is BuildStatus.PASS or not needs_build:
        build_reason = Reason.REUSED
    elif build_status is BuildStatus.ERROR:
        build_reason = Reason.ERROR_RETRY
    else:
        build_reason = Reason.MISSING
    counts = sum((c for _, c in per_unit), _Counts())
    return _SlotPart(tuple(items), counts, tuple(per_unit), build_reason)


def _distinct_counts(parts: Iterable[_SlotPart]) -> _Counts:
    """Counts of the distinct units among slots that share one build."""
    seen: dict[str, _Counts] = {}
    for part in parts:
        for unit, counts in part.per_unit:
            seen.setdefault(unit, counts)
    return sum(seen.values(), _Counts())


def plan(
    desired: DesiredState,
    snapshot: StoreSnapshot,
    *,
    estimates: Estimates | None = None,
    memo: PlanMemo | None = None,
) -> Plan:
    estimates = estimates or Estimates()
    baseline_units = frozenset(
        unit.unit
        for slot in desired.slots
        if slot.origin.kind is OriginKind.BASELINE
        for unit in slot.units
    )
    if memo is None or snapshot.generation is None:
        memo = PlanMemo()
    memo.bind((snapshot.generation, baseline_units, estimates))

    slots = sorted(desired.slots, key=_slot_order)
    parts: list[_SlotPart] = []
    for slot in slots:
        key = (
            slot.origin,
            slot.commit,
            slot.profile,
            slot.harness,
            slot.build.id,
            slot.priority,
            id(slot.units),
        )
        cached = memo.parts.get(key)
        if cached is None:
            part = _plan_slot(slot, snapshot, baseline_units=baseline_units, estimates=estimates)
            # Keep the units object alive with the part so its id() is never reused.
            memo.parts[key] = (slot.units, part)
        else:
            part = cached[1]
        parts.append(part)

    by_build: dict[str, list[tuple[DesiredSlot, _SlotPart]]] = {}
    for slot, part in zip(slots, parts, strict=True):
        by_build.setdefault(slot.build.id, []).append((slot, part))

    totals_counts = _Counts()
    planned_builds: list[PlannedBuild] = []
    for build_id, sharing in by_build.items():
        if len(sharing) == 1:
            totals_counts += sharing[0][1].counts
        else:
            totals_counts += _distinct_counts(part for _, part in sharing)
        reasons = [part.build_reason for _, part in sharing]
        # A build several slots share runs if any of them needs it.
        reason = next((r for r in reasons if r in RUN_REASONS), reasons[0])
        first = sharing[0][0]
        planned_builds.append(
            PlannedBuild(
                build=build_id,
                reason=reason,
                origins=tuple(dict.fromkeys(slot.origin for slot, _ in sharing)),
                commit=first.commit.commit,
                profile=first.profile,
            )
        )

    builds_run = sum(1 for b in planned_builds if b.reason in RUN_REASONS)
    totals = Totals(
        builds_run=builds_run,
        builds_reused=sum(1 for b in planned_builds if b.reason in REUSE_REASONS),
        builds_blocked=sum(1 for b in planned_builds if b.reason is Reason.BLOCKED),
        results_run=totals_counts.run,
        results_reused=totals_counts.reused,
        results_reused_from_baselines=totals_counts.from_baseline,
        results_blocked=totals_counts.blocked,
        estimated_seconds=totals_counts.seconds + builds_run * estimates.build_seconds,
    )
    items = tuple(item for part in parts for item in part.items)
    return Plan(
        totals=totals,
        items=items,
        builds=tuple(planned_builds),
        origins=_origin_summaries(slots, parts, estimates=estimates),
        suspended=desired.suspended,
        estimates=estimates,
        blocked=desired.blocked,
    )


def _origin_summaries(
    slots: list[DesiredSlot], parts: list[_SlotPart], *, estimates: Estimates
) -> tuple[OriginSummary, ...]:
    rows: dict[Origin, tuple[_Counts, set[str], set[str], set[str]]] = {}
    for slot, part in zip(slots, parts, strict=True):
        counts, commits, profiles, builds = rows.get(slot.origin, (_Counts(), set(), set(), set()))
        commits.add(slot.commit.commit)
        profiles.add(slot.profile)
        # Slots of two harnesses on one commit and profile share a build: count it once.
        if part.build_reason in RUN_REASONS:
            builds.add(slot.build.id)
        rows[slot.origin] = (counts + part.counts, commits, profiles, builds)
    return tuple(
        OriginSummary(
            origin=origin,
            commits=len(commits),
            profiles=len(profiles),
            results_run=counts.run,
            results_reused=counts.reused,
            results_reused_from_baselines=counts.from_baseline,
            results_blocked=counts.blocked,
            builds_run=len(builds),
            estimated_seconds=counts.seconds + len(builds) * estimates.build_seconds,
        )
        for origin, (counts, commits, profiles, builds) in sorted(
            rows.items(), key=lambda kv: str(kv[0])
        )
    )
