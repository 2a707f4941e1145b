"""Desired state: every (commit, profile, harness) a spec set asks for, as builds and units.

Pure: git answers arrive as a `Resolution`, harness answers as an `Enumeration`. Branches are
provenance only; two branches (or a branch and a baseline) that reach the same tree ask for the
same identities, and the planner counts that work once.

A slot whose profile's toolchain did not resolve on the planning host has no build identity
(the identity holds the concrete compiler): it becomes `BlockedWork` and the rest is planned.

Computing identities is the expensive part at farm scale (hundreds of commits × hundreds of test
files), so a `SlotMemo` remembers the units of each (tree, profile, harness, groups) and a new
commit costs only its own units.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.blocked_work import BlockedTestFiles, ToolchainBlocks
from reconciler.core.identity import (
    Identity,
    applies_toolchain,
    build_identity,
    build_recipe,
    canonical_json,
    harness_definition_revision,
    harness_inputs,
    runtime_inputs,
    sha256_hex,
    unit_fields,
    unit_identity,
)
from reconciler.core.toolchain import toolchain_identity, unavailable_message
from reconciler.model.desired import (
    DesiredBuild,
    DesiredSlot,
    DesiredState,
    DesiredUnit,
    EnumeratedTest,
    Enumeration,
    Origin,
    OriginKind,
    Resolution,
    ResolvedCommit,
)
from reconciler.model.specs import Harness, Profile
from reconciler.model.specset import SpecSet


class DesiredStateError(ValueError):
    """The resolution or enumeration handed in does not cover what the specs ask for."""


def tests_tree(harness: Harness, *, source_tree: str, resolution: Resolution) -> str:
    """The tree a harness reads its tests from: its own repo, or the source tree under test."""
    if harness.url is None:
        return source_tree
    return resolution.harnesses[harness.name].revision


def harness_revision(harness: Harness, *, resolution: Resolution) -> str:
    if harness.url is None:
        return harness_definition_revision(harness)
    return resolution.harnesses[harness.name].revision


@dataclass
class SlotMemo:
    """Units already computed, keyed by every input that decides them.

    Bound to one SpecSet: a different spec set means different inputs, so the memo starts over.
    """

    specs: SpecSet | None = None
    slots: dict[tuple[Any, ...], tuple[DesiredBuild, tuple[DesiredUnit, ...]]] = field(
        default_factory=dict
    )

    def bind(self, specs: SpecSet) -> None:
        if self.specs is not specs:
            self.specs = specs
            self.slots.clear()


class _UnitTemplate:
    """Unit identities of one (build, runtime, harness, timeout), spliced by test name.

    Same trick as `ResultIdentities`: the canonical JSON differs only at the `test` key.
    """

    _MARKER = "\u0001test\u0001"

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        text = canonical_json({**base, "test": self._MARKER, "kind": "unit"})
        self._prefix, _, self._suffix = text.partition(json.dumps(self._MARKER))

    def unit_id(self, test: str) -> str:
        return sha256_hex(self._prefix + json.dumps(test, ensure_ascii=True) + self._suffix)


def _toolchain_for(
    profile: Profile, harness: Harness, *, resolution: Resolution
) -> tuple[dict[str, str] | None, str | None]:
    """(what the build identity holds of the profile's toolchain, or why it is unavailable)."""
    if not applies_toolchain(harness):
        return None, None
    resolved = resolution.toolchains.get(profile.toolchain)
    if resolved is None:
        raise DesiredStateError(f"toolchain {profile.toolchain!r} was not resolved")
    if resolved.problem is not None:
        return None, unavailable_message(resolved, profile=profile.name)
    return toolchain_identity(resolved), None


def _units_for(
    *,
    specs: SpecSet,
    build: Identity,
    profile_name: str,
    harness: Harness,
    revision: str,
    groups: Sequence[str],
    tree: str,
    enumeration: Enumeration,
) -> tuple[DesiredUnit, ...]:
    profile = specs.profiles[profile_name]
    units: dict[str, DesiredUnit] = {}
    for group_name in groups:
        group = specs.test_groups[group_name]
        try:
            tests: Iterable[EnumeratedTest] = enumeration[(group_name, tree)]
        except KeyError:
            raise DesiredStateError(
                f"test group {group_name!r} was not enumerated for tree {tree}"
            ) from None
        base = unit_fields(
            build=build.hex,
            runtime=runtime_inputs(profile),
            harness=harness_inputs(harness, revision=revision),
            test="",
            timeout=group.timeout,
        )
        del base["test"]
        template = _UnitTemplate(base)
        runtime = profile.runtime.model_dump(mode="json")
        for test in tests:
            if test.blocked is not None:
                continue  # no subtests to plan: reported as BlockedWork by desired_state
            if any(str(runtime.get(key)) != value for key, value in test.runtime_match):
                continue  # e.g. fstests' xfs/ tests under a profile whose fstype is ext4
            preimage = {**base, "test": test.test}
            if test.dependencies:
                # Only the files that use a dependency carry it: an xfstests bump re-runs the
                # fstests-based tests and nothing else.
                preimage["harness"] = {
                    **base["harness"],
                    "dependencies": dict(test.dependencies),
                }
                unit_id = unit_identity(preimage).hex
            else:
                unit_id = template.unit_id(test.test)
            previous = units.get(unit_id)
            if previous is not None:
                # Two groups asking for the same test file under the same inputs: one unit,
                # the union of their subtests, the higher priority.
                merged = tuple(dict.fromkeys(previous.subtests + test.subtests))
                units[unit_id] = DesiredUnit(
                    unit=unit_id,
                    test=test.test,
                    group=previous.group,
                    subtests=merged,
                    priority=max(previous.priority, group.priority),
                    preimage=previous.preimage,
                )
                continue
            units[unit_id] = DesiredUnit(
                unit=unit_id,
                test=test.test,
                group=group_name,
                subtests=test.subtests,
                priority=group.priority,
                preimage=preimage,
            )
    return tuple(units.values())


def _slots_for_commit(
    *,
    specs: SpecSet,
    origin: Origin,
    commit: ResolvedCommit,
    position: int,
    groups: Sequence[str],
    profiles: Sequence[str],
    priority: int,
    resolution: Resolution,
    enumeration: Enumeration,
    memo: SlotMemo,
    toolchain_blocks: ToolchainBlocks,
) -> list[DesiredSlot]:
    by_harness: dict[str, list[str]] = {}
    for group_name in groups:
        by_harness.setdefault(specs.test_groups[group_name].harness, []).append(group_name)
    slots = []
    for profile_name in profiles:
        for harness_name, harness_groups in sorted(by_harness.items()):
            harness = specs.harnesses[harness_name]
            toolchain, unavailable = _toolchain_for(
                specs.profiles[profile_name], harness, resolution=resolution
            )
            if unavailable is not None:
                toolchain_blocks.add(
                    message=unavailable,
                    profile=profile_name,
                    harness=harness_name,
                    origin=origin,
                    commit=commit.commit,
                )
                continue
            revision = harness_revision(harness, resolution=resolution)
            tree = tests_tree(harness, source_tree=commit.tree, resolution=resolution)
            # Listings also depend on the harness's dependencies, which move on their own.
            resolved = resolution.harnesses.get(harness_name)
            dependencies = tuple(
                (dep.name, dep.tree) for dep in (resolved.dependencies if resolved else ())
            )
            key = (
                commit.tree,
                profile_name,
                harness_name,
                revision,
                tree,
                tuple(harness_groups),
                dependencies,
                canonical_json(toolchain),
            )
            cached = memo.slots.get(key)
            if cached is None:
                build = build_identity(
                    source_tree=commit.tree,
                    profile=specs.profiles[profile_name],
                    recipe=build_recipe(harness),
                    toolchain=toolchain,
                )
                units = _units_for(
                    specs=specs,
                    build=build,
                    profile_name=profile_name,
                    harness=harness,
                    revision=revision,
                    groups=harness_groups,
                    tree=tree,
                    enumeration=enumeration,
                )
                cached = (DesiredBuild(build.hex, build.preimage), units)
                memo.slots[key] = cached
            build_record, units = cached
            slots.append(
                DesiredSlot(
                    origin=origin,
                    commit=commit,
                    position=position,
                    profile=profile_name,
                    harness=harness_name,
                    build=build_record,
                    units=units,
                    priority=priority,
                )
            )
    return slots


def desired_state(
    *,
    specs: SpecSet,
    resolution: Resolution,
    enumeration: Enumeration,
    memo: SlotMemo | None = None,
) -> DesiredState:
    """Every slot the specs ask for: each unsuspended branch's commits and each baseline."""
    memo = memo if memo is not None else SlotMemo()
    memo.bind(specs)
    slots: list[DesiredSlot] = []
    suspended: list[str] = []
    blocked = BlockedTestFiles(enumeration)

    def ask(origin: Origin, commit: ResolvedCommit, groups: Sequence[str]) -> None:
        for group in groups:
            harness = specs.harnesses[specs.test_groups[group].harness]
            tree = tests_tree(harness, source_tree=commit.tree, resolution=resolution)
            blocked.add(
                origin=origin, commit=commit.commit, group=group, harness=harness.name, tree=tree
            )

    toolchain_blocks = ToolchainBlocks()
    for branch in sorted(specs.branches.values(), key=lambda b: b.name):
        if branch.suspend:
            suspended.append(branch.name)
            continue
        resolved = resolution.branches.get(branch.name)
        if resolved is None:
            raise DesiredStateError(f"branch {branch.name!r} was not resolved")
        origin = Origin(OriginKind.BRANCH, branch.name)
        for position, commit in enumerate(resolved.commits[: branch.max_commits]):
            ask(origin, commit, branch.test_groups)
            slots += _slots_for_commit(
                specs=specs,
                origin=origin,
                commit=commit,
                position=position,
                groups=branch.test_groups,
                profiles=branch.profiles,
                priority=branch.priority,
                resolution=resolution,
                enumeration=enumeration,
                memo=memo,
                toolchain_blocks=toolchain_blocks,
            )
    for baseline in sorted(specs.baselines.values(), key=lambda b: b.name):
        resolved_baseline = resolution.baselines.get(baseline.name)
        if resolved_baseline is None:
            raise DesiredStateError(f"baseline {baseline.name!r} was not resolved")
        baseline_origin = Origin(OriginKind.BASELINE, baseline.name)
        ask(baseline_origin, resolved_baseline.commit, baseline.test_groups)
        slots += _slots_for_commit(
            specs=specs,
            origin=baseline_origin,
            commit=resolved_baseline.commit,
            position=0,
            groups=baseline.test_groups,
            profiles=baseline.profiles,
            priority=baseline.priority,
            resolution=resolution,
            enumeration=enumeration,
            memo=memo,
            toolchain_blocks=toolchain_blocks,
        )
    return DesiredState(
        slots=tuple(slots),
        suspended=tuple(suspended),
        blocked=blocked.result() + toolchain_blocks.blocked(),
    )


def enumeration_requests(
    *, specs: SpecSet, resolution: Resolution
) -> list[tuple[str, str, str | None]]:
    """Which (test group, tree, repo) pairs need enumerating; repo is None for a harness repo.

    The app answers these with harness adapters (I/O) and hands the answers back as an
    `Enumeration`.
    """
    requests: dict[tuple[str, str], str | None] = {}

    def ask(groups: Sequence[str], commit: ResolvedCommit, repo: str) -> None:
        for group_name in groups:
            harness = specs.harnesses[specs.test_groups[group_name].harness]
            tree = tests_tree(harness, source_tree=commit.tree, resolution=resolution)
            requests.setdefault((group_name, tree), repo if harness.url is None else None)

    for branch in specs.branches.values():
        if branch.suspend or branch.name not in resolution.branches:
            continue
        for commit in resolution.branches[branch.name].commits[: branch.max_commits]:
            ask(branch.test_groups, commit, branch.repo)
    for baseline in specs.baselines.values():
        if baseline.name in resolution.baselines:
            ask(baseline.test_groups, resolution.baselines[baseline.name].commit, baseline.repo)
    return [(group, tree, repo) for (group, tree), repo in sorted(requests.items())]
