"""Small spec sets, resolutions and enumerations for planner tests, built without I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.core.desired import SlotMemo, desired_state, enumeration_requests
from reconciler.model.desired import (
    DesiredState,
    EnumeratedTest,
    Resolution,
    ResolvedBaseline,
    ResolvedBranch,
    ResolvedCommit,
    ResolvedHarness,
    ResolvedToolchain,
    StoreSnapshot,
    UnitSummary,
)
from reconciler.model.results import Status
from reconciler.model.specs import Baseline, Branch, Harness, Profile, Repo, TestGroup
from reconciler.model.specset import SpecSet


def commit(n: int, *, tree: str | None = None, at: int | None = None) -> ResolvedCommit:
    return ResolvedCommit(
        commit=f"{n:040x}",
        tree=tree or f"{n + 1000:040x}",
        subject=f"commit {n}",
        committed_at=at if at is not None else 1_700_000_000 + n * 60,
    )


def spec_set(
    *,
    branches: Iterable[Branch] = (),
    baselines: Iterable[Baseline] = (),
    profiles: Iterable[str] = ("default",),
    groups: Mapping[str, int] | None = None,
    harness: Harness | None = None,
) -> SpecSet:
    groups = groups if groups is not None else {"unit": 0}
    return SpecSet(
        spec_dir=Path("specs"),
        repos={"r": Repo(kind="Repo", name="r", url="/nonexistent")},
        branches={b.name: b for b in branches},
        baselines={b.name: b for b in baselines},
        profiles={
            name: Profile(kind="Profile", name=name, build_env={"CFLAGS": f"-D{name}"})
            for name in profiles
        },
        harnesses={
            "h": harness or Harness(kind="Harness", name="h", type="command", run="sh {test}")
        },
        test_groups={
            name: TestGroup(
                kind="TestGroup", name=name, harness="h", tests=["t/*"], priority=priority
            )
            for name, priority in groups.items()
        },
    )


def branch(
    name: str,
    *,
    priority: int = 0,
    profiles: tuple[str, ...] = ("default",),
    groups: tuple[str, ...] = ("unit",),
    suspend: bool = False,
    max_commits: int = 50,
) -> Branch:
    return Branch(
        kind="Branch",
        name=name,
        repo="r",
        ref=name,
        test_groups=list(groups),
        profiles=list(profiles),
        priority=priority,
        suspend=suspend,
        max_commits=max_commits,
    )


def baseline(name: str, *, profiles: tuple[str, ...] = ("default",)) -> Baseline:
    return Baseline(
        kind="Baseline",
        name=name,
        repo="r",
        ref=name,
        test_groups=["unit"],
        profiles=list(profiles),
    )


def fixture_toolchains(specs: SpecSet) -> dict[str, ResolvedToolchain]:
    """Every profile's toolchain resolved to a made-up version, as a planning host would."""
    return {
        profile.toolchain: ResolvedToolchain(profile.toolchain, version=f"{profile.toolchain} 1.0")
        for profile in specs.profiles.values()
    }


TESTS = (
    EnumeratedTest("t/a", ("a1", "a2", "a3")),
    EnumeratedTest("t/b", ("b1",)),
)


def build_desired(
    specs: SpecSet,
    *,
    branch_commits: Mapping[str, list[ResolvedCommit]] | None = None,
    baseline_commits: Mapping[str, ResolvedCommit] | None = None,
    tests: tuple[EnumeratedTest, ...] = TESTS,
    memo: SlotMemo | None = None,
    harnesses: Mapping[str, ResolvedHarness] | None = None,
) -> DesiredState:
    resolution = Resolution(
        harnesses=dict(harnesses or {}),
        toolchains=fixture_toolchains(specs),
        branches={
            name: ResolvedBranch(branch=name, ref=name, commits=tuple(commits))
            for name, commits in (branch_commits or {}).items()
        },
        baselines={
            name: ResolvedBaseline(baseline=name, commit=c)
            for name, c in (baseline_commits or {}).items()
        },
    )
    enumeration = {
        (group, tree): tests
        for group, tree, _repo in enumeration_requests(specs=specs, resolution=resolution)
    }
    return desired_state(specs=specs, resolution=resolution, enumeration=enumeration, memo=memo)


def snapshot_holding(
    desired: DesiredState,
    *,
    statuses: Mapping[str, Status] | None = None,
    only_units: set[str] | None = None,
) -> StoreSnapshot:
    """A snapshot where every subtest (of `only_units`, or all) has a verdict."""
    units: dict[str, UnitSummary] = {}
    for slot in desired.slots:
        for unit in slot.units:
            if only_units is None or unit.unit in only_units:
                units[unit.unit] = UnitSummary(verdicts=len(unit.subtests))
    return StoreSnapshot(units=units)
