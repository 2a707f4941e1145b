"""The plan diff as a pure function: what a spec change adds, removes and reuses, compared as
values, and the words each unit that must run is explained with."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.core.nearest_identity import (
    InputChange,
    Nearest,
    NearestSource,
    input_phrase,
)
from reconciler.core.plan_diff import DiffCounts, DiffRow, PlanDiff, diff_plans
from reconciler.core.planner import plan
from reconciler.model.desired import (
    DesiredState,
    EnumeratedTest,
    Origin,
    OriginKind,
    StoreSnapshot,
)
from reconciler.model.plan import Estimates
from reconciler.model.specs import Harness, Profile, Runtime
from reconciler.model.specset import SpecSet

from .planning_fixtures import TESTS, branch, build_desired, commit, snapshot_holding, spec_set

ESTIMATES = Estimates(subtest_seconds=10, build_seconds=100)
MAIN = Origin(OriginKind.BRANCH, "main")


def compare(base: DesiredState, head: DesiredState, snapshot: StoreSnapshot) -> PlanDiff:
    return diff_plans(
        base="main",
        head="topic",
        base_desired=base,
        base_plan=plan(base, snapshot, estimates=ESTIMATES),
        head_desired=head,
        head_plan=plan(head, snapshot, estimates=ESTIMATES),
        snapshot=snapshot,
    )


def with_profile(specs: SpecSet, profile: Profile) -> SpecSet:
    return replace(specs, profiles={**specs.profiles, profile.name: profile})


COMMITS = {"main": [commit(2), commit(1)]}


@pytest.mark.parametrize(
    ("path", "phrase"),
    [
        ("build.toolchain", "toolchain changed"),
        ("build.config.fragment", "config fragment changed"),
        ("build.config.base", "base config changed"),
        ("build.make_flags", "make flags changed"),
        ("build.env.CFLAGS", "build environment changed"),
        ("build.arch", "arch changed"),
        ("build.source_tree", "source changed"),
        ("build.recipe.command", "build recipe changed"),
        ("runtime.mem", "runtime mem changed"),
        ("runtime.env.KASAN", "runtime env changed"),
        ("harness.revision", "harness revision changed"),
        ("harness.run", "harness command changed"),
        ("harness.list", "harness command changed"),
        ("timeout", "timeout changed"),
        ("test", "new test"),
        ("something.else", "something.else changed"),
    ],
)
def test_input_phrases(path: str, phrase: str) -> None:
    assert input_phrase(path) == phrase


def test_adding_a_profile_adds_its_work_and_names_the_nearest_stored_unit() -> None:
    base_specs = spec_set(branches=[branch("main")], profiles=("default", "debug"))
    head_specs = replace(
        base_specs, branches={"main": branch("main", profiles=("default", "debug"))}
    )
    base = build_desired(base_specs, branch_commits=COMMITS)
    head = build_desired(head_specs, branch_commits=COMMITS)
    diff = compare(base, head, snapshot_holding(base))

    assert diff.builds == DiffCounts(added=2, added_to_run=2, removed=0, run=2, reused=2)
    assert diff.results == DiffCounts(added=8, added_to_run=8, removed=0, run=8, reused=8)
    assert diff.estimated_seconds == 8 * 10 + 2 * 100
    assert diff.rows == (
        DiffRow(MAIN, "debug", 2, 0, 8, 8, 0, 8, 0, 280.0),
        DiffRow(MAIN, "default", 0, 0, 0, 0, 0, 0, 8, 0.0),
    )
    assert [(c.commit[-1], c.profile, c.test, c.reason) for c in diff.changes] == [
        ("2", "debug", "t/a", "new profile"),
        ("2", "debug", "t/b", "new profile"),
        ("1", "debug", "t/a", "new profile"),
        ("1", "debug", "t/b", "new profile"),
    ]
    first = diff.changes[0]
    default_slot = next(s for s in base.slots if s.commit.commit == first.commit)
    assert first.nearest == Nearest(
        unit=next(u.unit for u in default_slot.units if u.test == "t/a"),
        source=NearestSource.STORED,
        origin=MAIN,
        commit=first.commit,
        profile="default",
    )
    assert first.differences == (
        InputChange("build.env.CFLAGS", "build environment changed", "-Ddefault", "-Ddebug"),
    )


def test_changed_profile_inputs_are_named_through_the_build_preimages() -> None:
    # A vm harness: its kbuild recipe takes the config and the toolchain as inputs.
    vm = Harness(kind="Harness", name="h", type="vm", run="sh {test}")
    base_specs = spec_set(branches=[branch("main")], harness=vm)
    changed = base_specs.profiles["default"].model_copy(
        update={"toolchain": "clang-18", "kconfig": ["KASAN=y"], "runtime": Runtime(mem="8G")}
    )
    base = build_desired(base_specs, branch_commits=COMMITS)
    head = build_desired(with_profile(base_specs, changed), branch_commits=COMMITS)
    diff = compare(base, head, snapshot_holding(base))

    assert diff.builds == DiffCounts(added=2, added_to_run=2, removed=2, run=2, reused=0)
    assert diff.results == DiffCounts(added=8, added_to_run=8, removed=8, run=8, reused=0)
    assert diff.rows == (DiffRow(MAIN, "default", 2, 2, 8, 8, 8, 8, 0, 280.0),)
    reasons = {c.reason for c in diff.changes}
    assert reasons == {"config fragment changed, toolchain changed, runtime mem changed"}
    change = diff.changes[0]
    assert change.nearest is not None and change.nearest.source is NearestSource.BASE
    assert change.differences == (
        InputChange("build.config.fragment", "config fragment changed", None, ["CONFIG_KASAN=y"]),
        InputChange("build.toolchain.name", "toolchain changed", "gcc", "clang-18"),
        # The concrete compiler the planning host resolved each name to.
        InputChange("build.toolchain.version", "toolchain changed", "gcc 1.0", "clang-18 1.0"),
        InputChange("runtime.mem", "runtime mem changed", None, "8G"),
    )


def test_harness_and_timeout_changes_are_named() -> None:
    base_specs = spec_set(branches=[branch("main")])
    harness = base_specs.harnesses["h"].model_copy(update={"run": "bash {test}"})
    group = base_specs.test_groups["unit"].model_copy(update={"timeout": 30})
    head_specs = replace(base_specs, harnesses={"h": harness}, test_groups={"unit": group})
    base = build_desired(base_specs, branch_commits=COMMITS)
    head = build_desired(head_specs, branch_commits=COMMITS)
    diff = compare(base, head, snapshot_holding(base))
    # The build does not change (the run command is not a build input), so it is not added
    # work, though it runs (the snapshot holds no build); every unit changes.
    assert diff.builds == DiffCounts(added=0, added_to_run=0, removed=0, run=2, reused=0)
    assert {c.reason for c in diff.changes} == {
        "harness revision changed, harness command changed, timeout changed"
    }
    assert diff.estimated_seconds == 8 * 10


def test_new_branch_commit_and_test_and_work_already_planned() -> None:
    base_specs = spec_set(branches=[branch("main", max_commits=1)])
    head_specs = spec_set(branches=[branch("main", max_commits=2), branch("topic")])
    base = build_desired(base_specs, branch_commits=COMMITS)
    head = build_desired(
        head_specs,
        branch_commits={**COMMITS, "topic": [commit(3)]},
        tests=(*TESTS, EnumeratedTest("t/c", ("c1", "c2"))),
    )
    diff = compare(base, head, StoreSnapshot())
    explained = {(str(c.origin), c.commit[-1], c.test): c.reason for c in diff.changes}
    assert explained == {
        ("topic", "3", "t/a"): "new branch",
        ("topic", "3", "t/b"): "new branch",
        ("topic", "3", "t/c"): "new branch",
        ("main", "2", "t/a"): "already planned at base",
        ("main", "2", "t/b"): "already planned at base",
        ("main", "2", "t/c"): "new test",
        ("main", "1", "t/a"): "new commit",
        ("main", "1", "t/b"): "new commit",
        ("main", "1", "t/c"): "new commit",
    }
    already = next(c for c in diff.changes if c.reason == "already planned at base")
    assert already.nearest is not None and already.nearest.unit == already.unit
    # Nothing is stored, so nothing new has a nearest identity.
    assert {c.nearest for c in diff.changes if c.reason.startswith("new ")} == {None}
    # Added: topic's 3 test files and main's new commit (6 subtests each) and new test (2).
    assert diff.results == DiffCounts(added=6 + 6 + 2, added_to_run=14, removed=0, run=18)
    assert diff.builds == DiffCounts(added=2, added_to_run=2, removed=0, run=3, reused=0)


def test_removed_work_counts_distinct_identities() -> None:
    shared = commit(8, tree=commit(7).tree)
    base_specs = spec_set(branches=[branch("a"), branch("b"), branch("c")])
    head_specs = spec_set(branches=[branch("a")])
    commits = {"a": [commit(7)], "b": [shared], "c": [commit(9)]}
    base = build_desired(base_specs, branch_commits=commits)
    head = build_desired(head_specs, branch_commits={"a": [commit(7)]})
    diff = compare(base, head, snapshot_holding(base))
    # b's tree is a's, so only c's build and results go; rows count what is freed, so
    # dropping b frees nothing.
    assert diff.builds == DiffCounts(added=0, added_to_run=0, removed=1, run=0, reused=1)
    assert diff.results == DiffCounts(added=0, added_to_run=0, removed=4, run=0, reused=4)
    origin = {name: Origin(OriginKind.BRANCH, name) for name in "abc"}
    assert diff.rows == (
        DiffRow(origin["a"], "default", results_reused=4),
        DiffRow(origin["b"], "default"),
        DiffRow(origin["c"], "default", builds_removed=1, results_removed=4),
    )
    assert diff.changes == ()


def test_an_unchanged_spec_adds_and_removes_nothing() -> None:
    specs = spec_set(branches=[branch("main")])
    desired = build_desired(specs, branch_commits=COMMITS)
    diff = compare(desired, desired, StoreSnapshot())
    assert (diff.builds.added, diff.builds.removed, diff.results.added, diff.results.removed) == (
        0,
        0,
        0,
        0,
    )
    assert diff.estimated_seconds == 0
    assert {c.reason for c in diff.changes} == {"already planned at base"}
    assert diff.results.run == 8
