"""Results reused for a byte-identical boot image: planned as `reused-same-image`, then copied.

Real store (files + SQLite index) and the real planner; the builds are records as the kbuild
recipe writes them (image hash = sha256 of the boot image), so no kernel is built here: the
end-to-end kernel test covers the recipe producing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.adapters.store.files import ResultStore
from reconciler.app.image_reuse import copy_planned, copy_same_image_results
from reconciler.core.identity import ResultIdentities, result_preimage, unit_identity
from reconciler.core.planner import plan
from reconciler.model.desired import DesiredBuild, DesiredState, EnumeratedTest, ResolvedHarness
from reconciler.model.plan import Reason
from reconciler.model.results import Attempt, BuildRecord, BuildStatus, ResultRecord, Status
from reconciler.model.specs import Harness

from .planning_fixtures import TESTS, branch, build_desired, commit, spec_set

IMAGE = "ab" * 32
OTHER_IMAGE = "cd" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    opened = ResultStore(tmp_path / "store")
    yield opened
    opened.close()


VM_TESTS = Harness(
    kind="Harness",
    name="h",
    type="vm",
    url="/srv/vm-tests.git",
    ref="main",
    list="sh {test} --list",
)
"""Tests from a repo of their own, run in a VM booted from a `kbuild` build."""
RESOLVED = {"h": ResolvedHarness(harness="h", revision="e" * 40, commit="f" * 40)}


def two_commits(
    tests: tuple[EnumeratedTest, ...] = TESTS, *, harness: Harness = VM_TESTS
) -> DesiredState:
    """One branch, two commits (two builds) of one profile: units t/a (3 subtests), t/b (1)."""
    specs = spec_set(branches=[branch("main")], harness=harness)
    return build_desired(
        specs, branch_commits={"main": [commit(2), commit(1)]}, tests=tests, harnesses=RESOLVED
    )


def put_build(
    store: ResultStore, build: DesiredBuild, *, image: str | None, status: BuildStatus
) -> None:
    store.put_build(
        BuildRecord(
            id=build.id,
            preimage=dict(build.preimage),
            status=status,
            image_hash=image,
            resolved_config_hash=None,
            log=None,
            duration=1.0,
            worker="local",
            finished_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )


def test_in_tree_tests_or_a_non_kbuild_build_never_share_results(store: ResultStore) -> None:
    # Quickstart-style: scripts in the source tree, built by a `command` recipe. Identical
    # binaries say nothing about tests that changed with the tree.
    in_tree = Harness(kind="Harness", name="h", type="command", run="sh {test}")
    desired = two_commits(harness=in_tree)
    newer, older = (slot.build.id for slot in desired.slots)
    put_build(store, desired.slots[1].build, image=IMAGE, status=BuildStatus.PASS)
    run_everything(store, desired, build=older)
    put_build(store, desired.slots[0].build, image=IMAGE, status=BuildStatus.PASS)
    result = plan(desired, store.index.snapshot(desired))
    assert {i.reason for i in result.items if i.build == newer} == {Reason.MISSING}
    unit = desired.slots[0].units[0]
    assert not copy_same_image_results(
        store, unit=unit.unit, unit_preimage=unit.preimage, subtests=unit.subtests
    )


def test_each_units_preimage_hashes_to_its_id() -> None:
    # The snapshot finds a twin unit by hashing this unit's preimage with the build swapped:
    # that only works if the preimage is exactly what the unit id hashes.
    for slot in two_commits().slots:
        for unit in slot.units:
            assert unit_identity(unit.preimage).hex == unit.unit


def run_everything(store: ResultStore, desired: DesiredState, *, build: str) -> None:
    for slot in desired.slots:
        if slot.build.id != build:
            continue
        for unit in slot.units:
            identities = ResultIdentities(unit.preimage)
            store.put_results(
                ResultRecord(
                    id=identities.of(subtest),
                    unit=unit.unit,
                    build=build,
                    test=unit.test,
                    subtest=subtest,
                    preimage=result_preimage(unit.preimage, subtest),
                    status=Status.FAIL if subtest == "a2" else Status.PASS,
                    duration=2.0,
                    attempts=[Attempt(status=Status.PASS, duration=2.0, worker="vm-host")],
                )
                for subtest in unit.subtests
            )


def test_identical_image_plans_reused_same_image_then_copies_and_plans_nothing(
    store: ResultStore,
) -> None:
    desired = two_commits()
    newer, older = (slot.build.id for slot in desired.slots)
    put_build(store, desired.slots[1].build, image=IMAGE, status=BuildStatus.PASS)
    run_everything(store, desired, build=older)
    put_build(store, desired.slots[0].build, image=IMAGE, status=BuildStatus.PASS)

    first = plan(desired, store.index.snapshot(desired))
    newer_items = [item for item in first.items if item.build == newer]
    assert {item.reason for item in newer_items} == {Reason.REUSED_SAME_IMAGE}
    assert all(item.to_run == () for item in newer_items)
    assert first.totals.results_run == 0
    assert first.totals.results_reused == 8  # 4 tested + 4 taken from the identical image
    assert not first.has_work

    assert copy_planned(store, plan=first, desired=desired) == 4
    copied = store.results_for_build(newer)
    assert sorted((r.subtest, r.status) for r in copied) == [
        ("a1", Status.PASS),
        ("a2", Status.FAIL),  # verdicts are copied as they are, failures included
        ("a3", Status.PASS),
        ("b1", Status.PASS),
    ]
    record = store.get_result(copied[0].id)
    assert record is not None and record.attempts[0].message is not None
    assert record.attempts[0].message.startswith(
        f"reused: boot image identical to build {older[:12]}"
    )

    again = plan(desired, store.index.snapshot(desired))
    assert {item.reason for item in again.items} == {Reason.REUSED}
    assert copy_planned(store, plan=again, desired=desired) == 0


@pytest.mark.parametrize(
    ("image", "status"),
    [(OTHER_IMAGE, BuildStatus.PASS), (None, BuildStatus.PASS), (IMAGE, BuildStatus.FAIL)],
    ids=["different-image", "no-image-hash", "this-build-failed"],
)
def test_no_reuse_without_a_passed_build_of_the_same_image(
    store: ResultStore, image: str | None, status: BuildStatus
) -> None:
    desired = two_commits()
    newer, older = (slot.build.id for slot in desired.slots)
    put_build(store, desired.slots[1].build, image=IMAGE, status=BuildStatus.PASS)
    run_everything(store, desired, build=older)
    put_build(store, desired.slots[0].build, image=image, status=status)

    result = plan(desired, store.index.snapshot(desired))
    reasons = {item.reason for item in result.items if item.build == newer}
    assert Reason.REUSED_SAME_IMAGE not in reasons
    unit = next(u for slot in desired.slots if slot.build.id == newer for u in slot.units)
    assert (
        copy_same_image_results(
            store, unit=unit.unit, unit_preimage=unit.preimage, subtests=unit.subtests
        )
        == []
    )


def test_an_incomplete_twin_is_not_reused_but_its_verdicts_are_copied_at_run_time(
    store: ResultStore,
) -> None:
    desired = two_commits()
    newer, older = (slot.build.id for slot in desired.slots)
    put_build(store, desired.slots[1].build, image=IMAGE, status=BuildStatus.PASS)
    run_everything(store, desired, build=older)
    put_build(store, desired.slots[0].build, image=IMAGE, status=BuildStatus.PASS)
    # A third subtest appears in t/b: the twin holds 1 of 2, so the planner runs the unit …
    grown = two_commits(
        (EnumeratedTest("t/a", ("a1", "a2", "a3")), EnumeratedTest("t/b", ("b1", "b2")))
    )
    result = plan(grown, store.index.snapshot(grown))
    t_b = next(i for i in result.items if i.build == newer and i.test == "t/b")
    assert t_b.reason is Reason.MISSING
    # … and the batch runner, given both subtests, copies the one the twin has and runs b2.
    unit = next(u for s in grown.slots if s.build.id == newer for u in s.units if u.test == "t/b")
    assert copy_same_image_results(
        store, unit=unit.unit, unit_preimage=unit.preimage, subtests=unit.subtests
    ) == ["b1"]
