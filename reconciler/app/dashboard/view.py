"""What the dashboard shows, read once from the desired state and the store.

Pages are rendered from these values only, so rendering never touches the store and the JSON
beside each page says exactly what the page shows. A subtest the specs ask for but the store
lacks is `None` ("pending"), never guessed; a commit with no stored result at all is "untested".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.adapters.store.files import ResultStore
from reconciler.model.desired import (
    BlockedWork,
    DesiredSlot,
    DesiredState,
    Origin,
    OriginKind,
    ResolvedCommit,
)
from reconciler.model.results import Status
from reconciler.model.specset import SpecSet

PENDING = "pending"
COUNT_COLUMNS = ("pass", "fail", "timeout", "skip", "error", PENDING)
FAILING = frozenset({Status.FAIL, Status.TIMEOUT})

# (profile, harness, test, subtest): one test across commits, as the last-pass and compare
# lookups follow it (its identity changes with every tree, so the id cannot be the key).
TestKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class StatusCounts:
    counts: Mapping[str, int]

    @classmethod
    def of(cls, statuses: Iterable[Status | None]) -> StatusCounts:
        counter = Counter(PENDING if s is None else s.value for s in statuses)
        return cls({column: counter.get(column, 0) for column in COUNT_COLUMNS})

    @classmethod
    def total(cls, parts: Iterable[StatusCounts]) -> StatusCounts:
        counter: Counter[str] = Counter()
        for part in parts:
            counter.update(part.counts)
        return cls({column: counter.get(column, 0) for column in COUNT_COLUMNS})

    @property
    def failing(self) -> int:
        return self.counts["fail"] + self.counts["timeout"]

    @property
    def state(self) -> str:
        """One word for a set of results: the worst thing in it, "untested" when empty."""
        ran = sum(n for column, n in self.counts.items() if column != PENDING)
        if ran == 0:
            return "untested"
        if self.failing:
            return "fail"
        if self.counts["error"]:
            return "error"
        if self.counts[PENDING]:
            return PENDING
        return "pass"


@dataclass(frozen=True)
class TestRow:
    profile: str
    harness: str
    test: str
    subtest: str
    status: Status | None
    duration: float | None = None
    result_id: str | None = None
    has_log: bool = False
    attempts: tuple[Status, ...] = ()
    message: str | None = None

    @property
    def key(self) -> TestKey:
        return (self.profile, self.harness, self.test, self.subtest)

    @property
    def status_name(self) -> str:
        return PENDING if self.status is None else self.status.value

    @property
    def flaky(self) -> bool:
        verdicts = {a for a in self.attempts if a.is_verdict}
        return len(verdicts) > 1


@dataclass
class CommitView:
    commit: ResolvedCommit
    origins: list[Origin] = field(default_factory=list)
    rows: list[TestRow] = field(default_factory=list)
    logs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Result id → hashes of its attempts' logs, verdict first."""

    @property
    def profiles(self) -> list[str]:
        return sorted({row.profile for row in self.rows})

    def counts(self, profile: str | None = None) -> StatusCounts:
        return StatusCounts.of(
            row.status for row in self.rows if profile is None or row.profile == profile
        )

    def status_of(self) -> dict[TestKey, Status | None]:
        return {row.key: row.status for row in self.rows}


@dataclass(frozen=True)
class OriginView:
    """A branch's window of commits (newest first), or a baseline's single commit."""

    origin: Origin
    ref: str
    repo: str
    commits: tuple[str, ...]
    baseline: str | None = None
    """For a branch: the Baseline spec it is compared with."""


@dataclass
class DashboardView:
    branches: dict[str, OriginView]
    baselines: dict[str, OriginView]
    commits: dict[str, CommitView]
    suspended: tuple[str, ...] = ()
    blocked: tuple[BlockedWork, ...] = ()
    """Work the specs ask for that could not be planned (failed listings, dependencies)."""


def read_view(*, specs: SpecSet, desired: DesiredState, store: ResultStore) -> DashboardView:
    """Every origin, commit and subtest the specs ask for, with what the store holds of each."""
    commits: dict[str, CommitView] = {}
    windows: dict[Origin, list[str]] = {}
    seen_units: dict[str, set[str]] = {}
    for slot in desired.slots:
        view = commits.setdefault(slot.commit.commit, CommitView(slot.commit))
        if slot.origin not in view.origins:
            view.origins.append(slot.origin)
        window = windows.setdefault(slot.origin, [])
        if slot.commit.commit not in window:
            window.append(slot.commit.commit)
        units = seen_units.setdefault(slot.commit.commit, set())
        _read_slot(slot, view=view, store=store, seen=units)
    for view in commits.values():
        view.rows.sort(key=lambda row: row.key)
    branches: dict[str, OriginView] = {}
    baselines: dict[str, OriginView] = {}
    for origin, window in windows.items():
        ordered = tuple(sorted(window, key=lambda c: -commits[c].commit.committed_at))
        if origin.kind is OriginKind.BRANCH:
            branch = specs.branches[origin.name]
            branches[origin.name] = OriginView(
                origin, branch.ref, branch.repo, ordered, baseline=branch.baseline
            )
        else:
            baseline = specs.baselines[origin.name]
            baselines[origin.name] = OriginView(origin, baseline.ref, baseline.repo, ordered)
    return DashboardView(
        branches=dict(sorted(branches.items())),
        baselines=dict(sorted(baselines.items(), key=lambda item: _newest_time(item[1], commits))),
        commits=commits,
        suspended=desired.suspended,
        blocked=desired.blocked,
    )


def _newest_time(origin: OriginView, commits: Mapping[str, CommitView]) -> int:
    return max((commits[c].commit.committed_at for c in origin.commits), default=0)


def _read_slot(slot: DesiredSlot, *, view: CommitView, store: ResultStore, seen: set[str]) -> None:
    for unit in slot.units:
        # Two origins at one commit ask for the same units: list each subtest once.
        if unit.unit in seen:
            continue
        seen.add(unit.unit)
        stored = {row.subtest: row for row in store.results_for_unit(unit.unit)}
        for subtest in unit.subtests:
            row = stored.get(subtest)
            if row is None:
                view.rows.append(TestRow(slot.profile, slot.harness, unit.test, subtest, None))
                continue
            record = store.get_result(row.id)
            attempts = record.attempts if record is not None else []
            verdict = next((a for a in attempts if a.status is row.status), None)
            logs = [a.log for a in attempts if a.log is not None]
            if verdict is not None and verdict.log is not None:
                logs.remove(verdict.log)
                logs.insert(0, verdict.log)
            if logs:
                view.logs[row.id] = tuple(logs)
            view.rows.append(
                TestRow(
                    slot.profile,
                    slot.harness,
                    unit.test,
                    subtest,
                    row.status,
                    duration=row.duration,
                    result_id=row.id,
                    has_log=bool(logs),
                    attempts=tuple(a.status for a in attempts),
                    message=verdict.message if verdict is not None else None,
                )
            )


def last_passes(view: DashboardView) -> dict[str, dict[TestKey, tuple[str, str]]]:
    """Commit → failing test → (branch, commit): the newest older commit in a branch's window
    where that test passed. Branches are searched by name; the first that knows wins."""
    found: dict[str, dict[TestKey, tuple[str, str]]] = {}
    for name, branch in view.branches.items():
        statuses = [(c, view.commits[c].status_of()) for c in branch.commits]
        for position, (commit, current) in enumerate(statuses):
            target = found.setdefault(commit, {})
            for key, status in current.items():
                if status not in FAILING or key in target:
                    continue
                for older, older_statuses in statuses[position + 1 :]:
                    if older_statuses.get(key) is Status.PASS:
                        target[key] = (name, older)
                        break
    return found
