"""From a plan to batches a worker can run: the bridge between planning and scheduling.

A plan names units (one test file of one build, runtime and harness revision) and the subtests
each still needs; a worker needs a batch: where to fetch the source, how to build it, which
subtests to run and under what limits. This module joins the two, purely.

What a batch needs that decides its verdict (arch, make flags, build environment, runtime
environment, the subtest timeout) is read from the build and unit *preimages*, the very inputs
their identities were hashed over, so a result can never be stored under an identity whose
inputs differ from those it was run with. What identity leaves out on purpose (the URL a worker
fetches from, the harness checkout, worker tags, failure confirmation) comes from the app through
`BatchInputs`.

A unit that two branches (or a branch and a baseline) share appears in the plan once per origin;
it becomes one set of batches, dated by its newest commit and carrying its highest priority, so
shared work runs once and as early as its most urgent requester needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.batching import batch_id, pack_batches
from reconciler.model.desired import DesiredSlot, DesiredState, DesiredUnit, Origin
from reconciler.model.execution import Batch, BatchDependency, BuildJob, SourceCheckout
from reconciler.model.plan import Plan, PlannedUnit


@dataclass(frozen=True)
class GroupInputs:
    """What a TestGroup says about where and how its batches run (not part of identity)."""

    worker_tags: frozenset[str] = frozenset()
    confirm_failures: int = 0


@dataclass(frozen=True)
class BatchInputs:
    """What the app knows and the plan does not, filled from the SpecSet and the resolution."""

    source_urls: Mapping[Origin, str]
    """URL workers fetch each origin's repo from (the Repo's `fetch_url`, else its `url`)."""
    tests_sources: Mapping[str, SourceCheckout] = field(default_factory=dict)
    """Per Harness name, the harness checkout, for harnesses whose tests live in their own repo
    (a `url`); absent when the tests are in the source tree."""
    groups: Mapping[str, GroupInputs] = field(default_factory=dict)
    """Per TestGroup name; a group absent here needs no tags and confirms no failures."""
    dependencies: Mapping[str, Mapping[str, BatchDependency]] = field(default_factory=dict)
    """Per Harness name, its resolved dependencies by name (ktest `require-git`)."""


def _build_job(
    item: PlannedUnit, slot: DesiredSlot, *, inputs: BatchInputs, commit: str
) -> BuildJob:
    preimage = slot.build.preimage
    # Identity drops empty inputs from preimages, so absent keys mean "none".
    return BuildJob(
        build=item.build,
        preimage=preimage,
        source=SourceCheckout(
            url=inputs.source_urls[item.origin], commit=commit, tree=slot.commit.tree
        ),
        harness=item.harness,
        profile=item.profile,
        arch=str(preimage["arch"]),
        build_env=dict(preimage.get("env", {})),
        make_flags=tuple(preimage.get("make_flags", ())),
    )


def _runtime_env(unit_preimage: Mapping[str, Any]) -> dict[str, str]:
    runtime: Mapping[str, Any] = unit_preimage.get("runtime", {})
    return {str(k): str(v) for k, v in runtime.get("env", {}).items()}


def _merge_duplicates(items: tuple[PlannedUnit, ...]) -> list[tuple[PlannedUnit, int]]:
    """Planned units that need subtests, one per unit id: the newest requester's item (it names
    the origin and commit the batch is fetched as) and the highest priority among requesters."""
    chosen: dict[str, tuple[PlannedUnit, int]] = {}
    for item in items:
        if not item.to_run:
            continue
        previous = chosen.get(item.unit)
        if previous is None:
            chosen[item.unit] = (item, item.priority)
            continue
        first, priority = previous
        newest = item if item.committed_at > first.committed_at else first
        chosen[item.unit] = (newest, max(priority, item.priority))
    return list(chosen.values())


def batches_from_plan(
    *,
    plan: Plan,
    desired: DesiredState,
    inputs: BatchInputs,
    durations: Mapping[tuple[str, str], float],
    budget: float = 600.0,
    default_seconds: float = 30.0,
) -> list[Batch]:
    """Batches for every planned unit that has subtests to run, in plan order.

    `durations` maps (test, subtest) to a historical duration in seconds; subtests without one
    are estimated at `default_seconds`. Each unit's subtests are packed by `pack_batches` up to
    `budget` seconds per batch. Raises KeyError when `desired` lacks a planned unit (the plan
    was made from another desired state) or `inputs` lacks a planned origin's source URL.
    """
    merged = _merge_duplicates(plan.items)
    needed = {item.unit for item, _ in merged}
    where: dict[str, tuple[DesiredUnit, DesiredSlot]] = {}
    for slot in desired.slots:
        for unit in slot.units:
            if unit.unit in needed and unit.unit not in where:
                where[unit.unit] = (unit, slot)

    batches: list[Batch] = []
    for item, priority in merged:
        unit, slot = where[item.unit]
        build = _build_job(item, slot, inputs=inputs, commit=item.commit)
        group = inputs.groups.get(item.group, GroupInputs())
        runtime_env = _runtime_env(unit.preimage)
        dependencies = _dependencies(unit.preimage, inputs.dependencies.get(item.harness, {}))
        unit_durations = {
            name: seconds
            for name in item.to_run
            if (seconds := durations.get((item.test, name))) is not None
        }
        packed = pack_batches(
            unit_subtests=item.to_run,
            durations=unit_durations,
            default_seconds=default_seconds,
            budget=budget,
        )
        for subtests, estimated in packed:
            batches.append(
                Batch(
                    id=batch_id(item.unit, subtests),
                    build=build,
                    unit=item.unit,
                    unit_preimage=unit.preimage,
                    test=item.test,
                    group=item.group,
                    subtests=subtests,
                    timeout=int(unit.preimage["timeout"]),
                    estimated_seconds=estimated,
                    committed_at=item.committed_at,
                    priority=priority,
                    origin=item.origin,
                    tests_source=inputs.tests_sources.get(item.harness),
                    runtime_env=runtime_env,
                    worker_tags=group.worker_tags,
                    confirm_failures=group.confirm_failures,
                    dependencies=dependencies,
                )
            )
    return batches


def _dependencies(
    unit_preimage: Mapping[str, Any], resolved: Mapping[str, BatchDependency]
) -> tuple[BatchDependency, ...]:
    """The dependencies a unit's identity names, at the trees it names (KeyError if unknown)."""
    harness: Mapping[str, Any] = unit_preimage.get("harness", {})
    named: Mapping[str, str] = harness.get("dependencies", {})
    chosen = []
    for name, tree in sorted(named.items()):
        dependency = resolved[name]
        if dependency.source.tree != tree:
            raise KeyError(f"dependency {name!r} resolved to {dependency.source.tree}, not {tree}")
        chosen.append(dependency)
    return tuple(chosen)
