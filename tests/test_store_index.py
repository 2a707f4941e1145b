"""The SQLite index: snapshot values, rebuild on open, reindex, verify, bulk insert."""

from __future__ import annotations

import dataclasses
import logging
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from reconciler.adapters.store import ResultStore, StoreIndex, StoreLayout
from reconciler.core.identity import identity_of
from reconciler.model.desired import (
    DesiredBuild,
    DesiredSlot,
    DesiredState,
    DesiredUnit,
    Origin,
    OriginKind,
    ResolvedCommit,
    StoreSnapshot,
    UnitSummary,
)
from reconciler.model.errors import StoreError
from reconciler.model.results import Attempt, BuildRecord, BuildStatus, ResultRecord, Status


def store_hex(text: str) -> str:
    return identity_of({"name": text}).hex


def store_build(tree: str, status: BuildStatus) -> BuildRecord:
    preimage = {"kind": "build", "source_tree": tree}
    return BuildRecord(id=identity_of(preimage).hex, preimage=preimage, status=status)


def store_result(
    *,
    build: str,
    test: str,
    subtest: str,
    status: Status,
    duration: float | None = None,
    log: str | None = None,
) -> ResultRecord:
    unit = unit_id(build, test)
    preimage = {"kind": "result", "unit": unit, "subtest": subtest}
    return ResultRecord(
        id=identity_of(preimage).hex,
        unit=unit,
        build=build,
        test=test,
        subtest=subtest,
        preimage=preimage,
        status=status,
        duration=duration,
        attempts=[Attempt(status=status, duration=duration, log=log)],
    )


def unit_id(build: str, test: str) -> str:
    return identity_of({"kind": "unit", "build": build, "test": test}).hex


def desired_state(builds: dict[str, dict[str, tuple[str, ...]]]) -> DesiredState:
    """build id -> test -> subtests, as one slot per build."""
    return DesiredState(
        slots=tuple(
            DesiredSlot(
                origin=Origin(OriginKind.BRANCH, "main"),
                commit=ResolvedCommit(commit=f"c{position}", tree="t", subject="s", committed_at=0),
                position=position,
                profile="default",
                harness="ktest",
                build=DesiredBuild(id=build, preimage={}),
                units=tuple(
                    DesiredUnit(
                        unit=unit_id(build, test),
                        test=test,
                        group="core",
                        subtests=subtests,
                        priority=0,
                        preimage={},
                    )
                    for test, subtests in tests.items()
                ),
                priority=0,
            )
            for position, (build, tests) in enumerate(builds.items())
        )
    )


BUILD_OK = store_build("tree-ok", BuildStatus.PASS)
BUILD_BROKEN = store_build("tree-broken", BuildStatus.FAIL)
BUILD_NEW = store_build("tree-new", BuildStatus.PASS)  # desired, never stored
SUBTESTS = ("a", "b", "c", "d")


@pytest.fixture
def store_populated(tmp_path: Path) -> Iterator[ResultStore]:
    """A store with a complete unit, a partial unit, an error-only unit and two builds."""
    with ResultStore(tmp_path / "store") as store:
        store.put_build(BUILD_OK)
        store.put_build(BUILD_BROKEN)
        ok = BUILD_OK.id
        log = store.put_log(b"ktest output\n")
        for subtest, seconds in zip(SUBTESTS, (1.0, 2.0, 3.0, 4.0), strict=True):
            store.put_result(
                store_result(
                    build=ok,
                    test="complete.ktest",
                    subtest=subtest,
                    status=Status.PASS,
                    duration=seconds,
                    log=log,
                )
            )
        store.put_result(
            store_result(
                build=ok, test="partial.ktest", subtest="a", status=Status.FAIL, duration=6
            )
        )
        store.put_result(
            store_result(
                build=ok, test="partial.ktest", subtest="b", status=Status.ERROR, duration=50
            )
        )
        store.put_result(
            store_result(build=ok, test="errors.ktest", subtest="a", status=Status.ERROR)
        )
        yield store


STORE_DESIRED = desired_state(
    {
        BUILD_OK.id: {
            "complete.ktest": SUBTESTS,
            "partial.ktest": SUBTESTS,
            "errors.ktest": SUBTESTS,
            "absent.ktest": SUBTESTS,
        },
        BUILD_BROKEN.id: {"complete.ktest": SUBTESTS},
        BUILD_NEW.id: {"complete.ktest": SUBTESTS},
    }
)


def expected_snapshot() -> StoreSnapshot:
    ok = BUILD_OK.id
    return StoreSnapshot(
        units={
            unit_id(ok, "complete.ktest"): UnitSummary(verdicts=4, errors=0),
            unit_id(ok, "partial.ktest"): UnitSummary(verdicts=1, errors=1),
            unit_id(ok, "errors.ktest"): UnitSummary(verdicts=0, errors=1),
        },
        subtests={
            unit_id(ok, "partial.ktest"): {"a": Status.FAIL, "b": Status.ERROR},
            unit_id(ok, "errors.ktest"): {"a": Status.ERROR},
        },
        builds={BUILD_OK.id: BuildStatus.PASS, BUILD_BROKEN.id: BuildStatus.FAIL},
        # Error durations never count: partial.ktest's mean is its one verdict's 6 s.
        mean_subtest_seconds={"complete.ktest": 2.5, "partial.ktest": 6.0},
    )


def without_generation(snapshot: StoreSnapshot) -> StoreSnapshot:
    return dataclasses.replace(snapshot, generation=None)


def test_snapshot_values(store_populated: ResultStore) -> None:
    snapshot = store_populated.index.snapshot(STORE_DESIRED)
    assert without_generation(snapshot) == expected_snapshot()
    assert snapshot.generation == store_populated.index.generation


def test_generation_counts_changes(store_populated: ResultStore) -> None:
    index = store_populated.index
    before = index.generation
    store_populated.put_build(BUILD_OK)
    assert index.generation == before
    store_populated.put_build(BUILD_NEW)
    assert index.generation == before + 1


def test_deleted_index_is_rebuilt_on_open_with_the_same_answers(
    store_populated: ResultStore, caplog: pytest.LogCaptureFixture
) -> None:
    layout = store_populated.layout
    store_populated.close()
    layout.index_path.unlink()
    with caplog.at_level(logging.INFO), StoreIndex.open(layout) as index:
        assert index.rebuilt_reason == "missing"
        assert without_generation(index.snapshot(STORE_DESIRED)) == expected_snapshot()
        assert index.verify() == []
    assert "missing" in caplog.text


@pytest.mark.parametrize(
    "damage",
    ["garbage", "empty-database", "wrong-schema-version"],
)
def test_corrupt_index_is_rebuilt_with_a_warning(
    store_populated: ResultStore, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    layout = store_populated.layout
    store_populated.close()
    path = layout.index_path
    if damage == "garbage":
        path.write_bytes(b"this is not an SQLite database" * 200)
    elif damage == "empty-database":
        path.unlink()
        with closing(sqlite3.connect(path)) as connection:
            connection.execute("CREATE TABLE unrelated (x)")
    else:
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    with caplog.at_level(logging.WARNING), StoreIndex.open(layout) as index:
        assert index.rebuilt_reason is not None
        # Another schema version is what an upgrade leaves, not damage, and is called so.
        kind = "outdated" if damage == "wrong-schema-version" else "corrupt"
        assert index.rebuilt_reason.startswith(kind)
        assert without_generation(index.snapshot(STORE_DESIRED)) == expected_snapshot()
    assert "rebuilding it from the record files" in caplog.text
    assert [r.levelno for r in caplog.records if "rebuilding" in r.message] == [logging.WARNING]


def test_reindex_matches_incremental_state(store_populated: ResultStore) -> None:
    index = store_populated.index
    incremental = index.snapshot(STORE_DESIRED)
    counts = index.reindex()
    assert (counts.results, counts.builds, counts.units, counts.skipped) == (7, 2, 3, 0)
    rebuilt = index.snapshot(STORE_DESIRED)
    assert without_generation(rebuilt) == without_generation(incremental) == expected_snapshot()
    # Generations never go backwards, so a cache keyed on them stays sound across a reindex.
    assert rebuilt.generation is not None and incremental.generation is not None
    assert rebuilt.generation > incremental.generation
    assert index.verify() == []
    assert not [p.name for p in store_populated.root.iterdir() if p.name.startswith(".")]


def test_reindex_skips_unreadable_files(store_populated: ResultStore) -> None:
    (store_populated.root / "results" / "00").mkdir()
    (store_populated.root / "results" / "00" / f"{'0' * 64}.json").write_text("{}")
    counts = store_populated.index.reindex()
    assert (counts.results, counts.skipped) == (7, 1)


def test_verify_healthy_store_is_empty(store_populated: ResultStore) -> None:
    assert store_populated.index.verify() == []


def test_verify_finds_tampered_missing_and_orphaned_files(store_populated: ResultStore) -> None:
    ok = BUILD_OK.id
    layout = store_populated.layout
    tampered = store_result(build=ok, test="complete.ktest", subtest="a", status=Status.PASS)
    path = layout.result_path(tampered.id)
    path.write_text(path.read_text().replace('"subtest": "a"', '"subtest": "z"', 1))
    missing = store_result(build=ok, test="complete.ktest", subtest="b", status=Status.PASS)
    layout.result_path(missing.id).unlink()
    orphan = store_result(build=ok, test="other.ktest", subtest="a", status=Status.PASS)
    layout.result_path(orphan.id).parent.mkdir(parents=True, exist_ok=True)
    layout.result_path(orphan.id).write_text(orphan.model_dump_json())
    garbage = layout.results_dir / "ff" / f"{'f' * 64}.json"
    garbage.parent.mkdir(exist_ok=True)
    garbage.write_text("not json")

    problems = store_populated.index.verify()

    def rel(p: Path) -> str:
        return str(p.relative_to(layout.root))

    assert len(problems) == 4, problems
    assert any(p.startswith(f"{rel(path)}: id is not the hash of its preimage") for p in problems)
    assert (
        f"{rel(layout.result_path(missing.id))}: in the index but the file is missing" in problems
    )
    assert f"{rel(layout.result_path(orphan.id))}: not in the index" in problems
    assert any(p.startswith(f"{rel(garbage)}: does not parse") for p in problems)


def test_verify_finds_bad_counts_and_logs(store_populated: ResultStore) -> None:
    layout = store_populated.layout
    log_hash = store_populated.put_log(b"ktest output\n")
    log_path = layout.log_path(log_hash)
    log_path.unlink()
    with closing(sqlite3.connect(layout.index_path)) as connection, connection:
        connection.execute(
            "UPDATE units SET verdicts = 3 WHERE unit = ?",
            (unit_id(BUILD_OK.id, "complete.ktest"),),
        )
    problems = store_populated.index.verify()
    unit = unit_id(BUILD_OK.id, "complete.ktest")
    assert [p for p in problems if p.startswith("unit")] == [
        f"unit {unit}: index counts (verdicts, errors, seconds, timed) (3, 0, 10.0, 4) "
        "but its results give (4, 0, 10.0, 4)"
    ]
    log_problems = [p for p in problems if "log" in p]
    assert len(log_problems) == 1
    assert f"{log_path.relative_to(layout.root)}: log is not in the store" in log_problems[0]
    assert len(problems) == 2
    assert store_populated.index.reindex().results == 7
    assert store_populated.index.verify() == log_problems


def test_unopenable_index_is_a_store_error_not_a_rebuild(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    layout.index_path.mkdir(parents=True)  # a directory where the database should be
    with pytest.raises(StoreError) as caught:
        StoreIndex.open(layout)
    assert str(layout.index_path) in str(caught.value)
    assert layout.index_path.is_dir()


def test_bulk_insert_at_modest_scale(tmp_path: Path) -> None:
    """200,000 rows over 2,000 units: snapshot counts and partial subtests match a plain
    Python computation of the same rows."""
    rng = random.Random(7)
    builds = [store_hex(f"build{b}") for b in range(20)]
    tests = [f"t{t:03}.ktest" for t in range(100)]
    subtests = tuple(f"s{s:03}" for s in range(100))
    rows = []
    expected_units: dict[str, UnitSummary] = {}
    expected_subtests: dict[str, dict[str, Status]] = {}
    seconds: dict[str, list[float]] = {}
    subtest_seconds: dict[tuple[str, str], list[float]] = {}
    for build in builds:
        for test in tests:
            unit = unit_id(build, test)
            partial = rng.random() < 0.1
            statuses: dict[str, Status] = {}
            for subtest in subtests:
                if partial and rng.random() < 0.3:
                    continue
                status = rng.choice([Status.PASS] * 97 + [Status.FAIL, Status.SKIP, Status.ERROR])
                duration = float(rng.randint(1, 8))
                statuses[subtest] = status
                if status is not Status.ERROR:
                    seconds.setdefault(test, []).append(duration)
                    subtest_seconds.setdefault((test, subtest), []).append(duration)
                result = identity_of({"unit": unit, "subtest": subtest}).hex
                rows.append((result, unit, build, test, subtest, status.value, duration))
            verdicts = sum(s is not Status.ERROR for s in statuses.values())
            expected_units[unit] = UnitSummary(verdicts, len(statuses) - verdicts)
            if verdicts != len(subtests):
                expected_subtests[unit] = statuses
    rng.shuffle(rows)
    desired = desired_state({build: dict.fromkeys(tests, subtests) for build in builds})

    with StoreIndex.open(StoreLayout(tmp_path / "store")) as index:
        assert index.bulk_insert_results(iter(rows)) == len(rows)
        snapshot = index.snapshot(desired)
        pairs = [(test, subtest) for test in tests for subtest in subtests]
        durations = index.subtest_durations(pairs)
    assert snapshot.units == expected_units
    assert snapshot.subtests == expected_subtests
    assert snapshot.mean_subtest_seconds == {
        test: sum(values) / len(values) for test, values in seconds.items()
    }
    assert snapshot.builds == {}
    assert durations == pytest.approx(
        {pair: sum(values) / len(values) for pair, values in subtest_seconds.items()}
    )


def test_subtest_durations_average_verdicts_across_builds(store_populated: ResultStore) -> None:
    other = store_hex("other build")
    store_populated.put_result(
        store_result(
            build=other, test="complete.ktest", subtest="a", status=Status.PASS, duration=3
        )
    )
    # A timeout is a verdict, and the time it took is what a batch will spend on it again.
    store_populated.put_result(
        store_result(
            build=other, test="complete.ktest", subtest="b", status=Status.TIMEOUT, duration=30
        )
    )
    pairs = [
        ("complete.ktest", "a"),
        ("complete.ktest", "b"),
        ("complete.ktest", "c"),
        ("partial.ktest", "a"),
        ("partial.ktest", "b"),  # only an error result: no history
        ("errors.ktest", "a"),  # error, no duration
        ("absent.ktest", "a"),
        ("complete.ktest", "a"),  # repeated pairs are fine
    ]
    expected = {
        ("complete.ktest", "a"): 2.0,
        ("complete.ktest", "b"): 16.0,
        ("complete.ktest", "c"): 3.0,
        ("partial.ktest", "a"): 6.0,
    }
    index = store_populated.index
    assert index.subtest_durations(pairs) == expected
    assert index.subtest_durations([]) == {}
    assert index.verify() == []
    index.reindex()
    assert index.subtest_durations(iter(pairs)) == expected


def test_subtest_durations_follow_a_replaced_row(store_populated: ResultStore) -> None:
    """An error (never timed) giving way to a verdict, and a row whose duration changes, move
    the per-subtest sums by exactly their difference."""
    ok = BUILD_OK.id
    index = store_populated.index
    store_populated.put_result(
        store_result(build=ok, test="errors.ktest", subtest="a", status=Status.PASS, duration=8)
    )
    assert index.subtest_durations([("errors.ktest", "a")]) == {("errors.ktest", "a"): 8.0}
    slower = store_result(
        build=ok, test="complete.ktest", subtest="d", status=Status.PASS, duration=10
    )
    assert index.add_results([slower]) is True
    assert index.subtest_durations([("complete.ktest", "d")]) == {("complete.ktest", "d"): 10.0}
    assert index.sync_results([], absent=[slower.id]) == 1
    assert index.subtest_durations([("complete.ktest", "d")]) == {}
    with closing(sqlite3.connect(store_populated.layout.index_path)) as connection:
        assert connection.execute(
            "SELECT count(*) FROM durations WHERE test = 'complete.ktest' AND subtest = 'd'"
        ).fetchone() == (0,)


def test_subtest_durations_of_many_pairs_in_chunks(tmp_path: Path) -> None:
    """More subtests per test than one query may bind, over more tests than one chunk."""
    subtests = tuple(f"s{s:04}" for s in range(2_000))
    build = store_hex("build")
    rows = [
        (
            identity_of({"test": test, "subtest": subtest}).hex,
            unit_id(build, test),
            build,
            test,
            subtest,
            "pass",
            float(n % 7),
        )
        for test in ("t1.ktest", "t2.ktest")
        for n, subtest in enumerate(subtests)
    ]
    with StoreIndex.open(StoreLayout(tmp_path / "store")) as index:
        index.bulk_insert_results(rows)
        pairs = [
            (test, subtest) for test in ("t1.ktest", "t2.ktest", "t3.ktest") for subtest in subtests
        ]
        assert index.subtest_durations(pairs) == {
            (test, subtest): float(n % 7)
            for test in ("t1.ktest", "t2.ktest")
            for n, subtest in enumerate(subtests)
        }


def test_verify_finds_bad_subtest_durations(store_populated: ResultStore) -> None:
    with closing(sqlite3.connect(store_populated.layout.index_path)) as connection, connection:
        connection.execute(
            "UPDATE durations SET timed = 2 WHERE test = 'complete.ktest' AND subtest = 'a'"
        )
        connection.execute("DELETE FROM durations WHERE test = 'partial.ktest'")
        connection.execute("INSERT INTO durations VALUES ('ghost.ktest', 'x', 1.0, 1)")
    assert store_populated.index.verify() == [
        "test complete.ktest subtest a: index durations (seconds, timed) (1.0, 2) "
        "but its results give (1.0, 1)",
        "test ghost.ktest subtest x: durations row but no timed results",
        "test partial.ktest subtest a: timed results but no durations row",
    ]
    store_populated.index.reindex()
    assert store_populated.index.verify() == []
