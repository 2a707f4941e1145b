"""ci-status-style queries over the local store: `branches`, `log`, `show`, `logs`.

A kernel developer asks "what happened to my branch" from a terminal; the answer is the desired
state (what the specs and git say should be tested, via `Planner.desired`) joined with what the
store holds. Nothing here reads result files except for a log the user asked for: counts come
from the index's per-unit rows (`units`, with per-verdict counts maintained on every write), and
a commit's results from the covering `results_by_unit` index, so `log` over 500 commits and
`show` of a 13,000-test commit stay interactive on a farm-sized store.

A unit whose stored count equals its desired subtest count is taken as complete, exactly as the
planner's snapshot does; any other unit is read subtest by subtest, so results the specs no
longer ask for never inflate the counts.

`RemoteQueries` (`app.query_remote`) answers the same questions from a dashboard's JSON.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.adapters.store.queries import StoredResult
from reconciler.app.log_slices import slice_log
from reconciler.app.planning import Planner, Workspace
from reconciler.app.query_model import (
    COUNT_KEYS,
    PENDING,
    Branches,
    BranchLog,
    BranchSummary,
    CommitLogs,
    CommitResults,
    Counts,
    FailureListing,
    LogEntry,
    LogText,
    TestRow,
    short,
)
from reconciler.model.desired import DesiredSlot, DesiredState, DesiredUnit, Origin, OriginKind
from reconciler.model.errors import UserError
from reconciler.model.results import Status
from reconciler.model.specset import SpecSet

MIN_PREFIX = 4
NO_LOG = "no log stored"


def resolve_prefix(prefix: str, known: Iterable[str]) -> str:
    """The one known commit starting with `prefix` (>= 4 hex digits); UserError otherwise."""
    wanted = prefix.lower()
    if len(wanted) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in wanted):
        raise UserError(
            f"{prefix!r} is not a commit prefix",
            hint=f"give at least {MIN_PREFIX} hex digits of a commit",
        )
    matches = sorted({commit for commit in known if commit.startswith(wanted)})
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(
            f"no commit {prefix} in any tracked branch or baseline window",
            hint="`reconciler branches` and `reconciler log BRANCH` list the known commits",
        )
    raise UserError(
        f"commit prefix {prefix} is ambiguous: {', '.join(short(c) for c in matches)}",
        hint="give more digits",
    )


def select_logs(rows: Sequence[TestRow], *, test: str, profile: str | None) -> list[TestRow]:
    """Stored rows `test` names: `FILE:SUBTEST` exactly, or every subtest of `FILE`."""
    named = [
        row
        for row in rows
        if (test in (row.name, row.test)) and (profile is None or row.profile == profile)
    ]
    if not named:
        raise UserError(
            f"no test {test!r}" + (f" under profile {profile}" if profile else ""),
            hint="`reconciler show COMMIT` lists the tests as FILE:SUBTEST",
        )
    stored = [row for row in named if row.result is not None]
    if not stored:
        raise UserError(f"{test} has no stored result yet (pending)")
    return sorted(stored, key=lambda row: (row.test, row.subtest, row.profile))


def log_text(row: TestRow, *, attempt: int, log: bytes | None, full: bool) -> LogText:
    """The LogText of one result's attempt, sliced to its subtest unless `full`."""
    if log is None:
        return LogText(row=row, attempt=attempt, scope="none", note=NO_LOG, text="")
    text = log.decode("utf-8", errors="replace")
    if full:
        return LogText(row=row, attempt=attempt, scope="batch", note=None, text=text)
    part = slice_log(text, subtest=row.subtest)
    if part is None:
        note = "the batch log cannot be cut per subtest; this is the whole log"
        return LogText(row=row, attempt=attempt, scope="batch", note=note, text=text)
    return LogText(row=row, attempt=attempt, scope="subtest", note=None, text=part)


def logs_of(
    results: CommitResults,
    *,
    test: str | None,
    profile: str | None,
    attempt: int,
    full: bool,
    fetch: Callable[[TestRow], bytes | None],
) -> FailureListing | CommitLogs:
    """`logs`, wherever the logs come from: without `test`, the failures to choose from; with
    it, each matching result's log, read by `fetch` (the store, or a dashboard over HTTP)."""
    if test is None:
        return FailureListing.of(results)
    logs = []
    for row in select_logs(results.tests, test=test, profile=profile):
        logs.append(log_text(row, attempt=attempt, log=fetch(row), full=full))
    return CommitLogs(commit=results.commit, logs=tuple(logs))


class StoreQueries:
    """The query commands over one desired state and the store holding its results."""

    def __init__(self, *, specs: SpecSet, desired: DesiredState, store: ResultStore) -> None:
        self.specs = specs
        self.desired = desired
        self.store = store
        self._by_origin: defaultdict[Origin, list[DesiredSlot]] = defaultdict(list)
        for slot in desired.slots:
            self._by_origin[slot.origin].append(slot)

    # branches

    def branches(self) -> Branches:
        newest = [s for s in self.desired.slots if s.position == 0]
        counts = self._slot_counts(newest)
        rows = []
        origins = [(OriginKind.BRANCH, name) for name in sorted(self.specs.branches)]
        origins += [(OriginKind.BASELINE, name) for name in sorted(self.specs.baselines)]
        for kind, name in origins:
            spec = (self.specs.branches if kind is OriginKind.BRANCH else self.specs.baselines)[
                name
            ]
            slots = [s for s in self._by_origin.get(Origin(kind, name), []) if s.position == 0]
            first = slots[0].commit if slots else None
            rows.append(
                BranchSummary(
                    name=name,
                    kind=kind.value,
                    ref=spec.ref,
                    suspended=bool(getattr(spec, "suspend", False)),
                    commit=first.commit if first else None,
                    subject=first.subject if first else None,
                    counts=Counts.sum(counts[id(s)] for s in slots) if slots else None,
                )
            )
        return Branches(tuple(rows))

    # log

    def origin(self, name: str) -> Origin:
        if name in self.specs.branches:
            return Origin(OriginKind.BRANCH, name)
        if name in self.specs.baselines:
            return Origin(OriginKind.BASELINE, name)
        known = sorted({*self.specs.branches, *self.specs.baselines})
        raise UserError(
            f"no branch or baseline {name!r}", hint=f"known: {', '.join(known) or 'none'}"
        )

    def branch_log(self, branch: str) -> BranchLog:
        origin = self.origin(branch)
        slots = self._by_origin.get(origin, [])
        counts = self._slot_counts(slots)
        by_commit: dict[str, dict[str, Counts]] = {}
        first_slot: dict[str, DesiredSlot] = {}
        for slot in sorted(slots, key=lambda s: (s.position, s.profile)):
            first_slot.setdefault(slot.commit.commit, slot)
            profiles = by_commit.setdefault(slot.commit.commit, {})
            previous = profiles.get(slot.profile)
            part = counts[id(slot)]
            profiles[slot.profile] = part if previous is None else previous + part
        entries = tuple(
            LogEntry(
                commit=commit,
                subject=first_slot[commit].commit.subject,
                committed_at=first_slot[commit].commit.committed_at,
                profiles=profiles,
            )
            for commit, profiles in by_commit.items()
        )
        suspended = origin.kind is OriginKind.BRANCH and self.specs.branches[branch].suspend
        return BranchLog(
            branch=branch, kind=origin.kind.value, suspended=suspended, commits=entries
        )

    # show

    def known_commits(self) -> tuple[str, ...]:
        return tuple(sorted({slot.commit.commit for slot in self.desired.slots}))

    def resolve_commit(self, prefix: str) -> str:
        return resolve_prefix(prefix, self.known_commits())

    def commit_results(self, commit_prefix: str) -> CommitResults:
        commit = self.resolve_commit(commit_prefix)
        slots = [slot for slot in self.desired.slots if slot.commit.commit == commit]
        units = _distinct_units(slots)
        stored = self.store.index.results_for_units({unit.unit for _, unit in units})
        rows = []
        for profile, unit in units:
            by_subtest = {result.subtest: result for result in stored.get(unit.unit, [])}
            for subtest in unit.subtests:
                result = by_subtest.get(subtest)
                rows.append(
                    TestRow(
                        test=unit.test,
                        subtest=subtest,
                        profile=profile,
                        status=result.status.value if result else PENDING,
                        duration=result.duration if result else None,
                        result=result.id if result else None,
                    )
                )
        rows.sort(key=lambda row: row.sort_key)
        return CommitResults(
            commit=commit,
            subject=slots[0].commit.subject,
            origins=tuple(sorted({str(slot.origin) for slot in slots})),
            tests=tuple(rows),
        )

    # logs

    def commit_logs(
        self,
        commit_prefix: str,
        test: str | None = None,
        *,
        full: bool = False,
        attempt: int = 1,
        profile: str | None = None,
    ) -> FailureListing | CommitLogs:
        """Without `test`: the failures to choose from. With it: their logs (see `LogText`)."""

        def fetch(row: TestRow) -> bytes | None:
            assert row.result is not None  # select_logs keeps stored rows only
            record = self.store.get_result(row.result)
            if record is None or not 1 <= attempt <= len(record.attempts):
                count = len(record.attempts) if record else 0
                raise UserError(
                    f"{row.name} ({row.profile}) has {count} attempt(s), not {attempt}",
                    hint="--attempt counts from 1",
                )
            log_hash = record.attempts[attempt - 1].log
            return self.store.read_log(log_hash) if log_hash else None

        results = self.commit_results(commit_prefix).with_profile(profile)
        return logs_of(results, test=test, profile=profile, attempt=attempt, full=full, fetch=fetch)

    # counting

    def _slot_counts(self, slots: Sequence[DesiredSlot]) -> dict[int, Counts]:
        """Counts of each slot (by `id`), summed by the index; a slot holding a unit whose
        stored results do not match its desired subtests is counted subtest by subtest."""
        groups = [[(unit.unit, len(unit.subtests)) for unit in slot.units] for slot in slots]
        counts = {}
        for slot, summed in zip(slots, self.store.index.summed_counts(groups), strict=True):
            tally = self._exact_tally(slot) if summed[8] else summed[:8]
            *by_status, seconds, timed = tally
            counts[id(slot)] = Counts(
                by_status=dict(zip(COUNT_KEYS, by_status, strict=True)),
                duration=seconds if timed else None,
            )
        return counts

    def _exact_tally(self, slot: DesiredSlot) -> Tally:
        units = {unit.unit: unit for unit in slot.units}
        stored = self.store.index.unit_counts(units)
        partial = [unit for unit, row in stored.items() if row[7] != len(units[unit].subtests)]
        rows = self.store.index.results_for_units(partial)
        tallies: list[Tally] = []
        for unit in slot.units:
            row = stored.get(unit.unit)
            if row is None:
                tallies.append((0, 0, 0, 0, 0, len(unit.subtests), 0.0, 0))
            elif unit.unit in rows:
                tallies.append(_partial_tally(unit, rows[unit.unit]))
            else:
                passed, failed, skipped, timed_out, errors, seconds, timed, _ = row
                tallies.append((passed, failed, skipped, timed_out, errors, 0, seconds, timed))
        passed, failed, skipped, timed_out, errors, pending, seconds, timed = (
            sum(column) for column in zip(*tallies, strict=True)
        )
        return (passed, failed, skipped, timed_out, errors, pending, float(seconds), timed)


def _distinct_units(slots: Iterable[DesiredSlot]) -> list[tuple[str, DesiredUnit]]:
    """(profile, unit) of the slots, each once: a commit in a branch and a baseline (or in two
    branches) asks for the same units."""
    seen: set[tuple[str, str]] = set()
    units = []
    for slot in slots:
        for unit in slot.units:
            if (slot.profile, unit.unit) not in seen:
                seen.add((slot.profile, unit.unit))
                units.append((slot.profile, unit))
    return units


Tally = tuple[int, int, int, int, int, int, float, int]
"""pass, fail, skip, timeout, error, pending (COUNT_KEYS order), seconds, timed verdicts."""


def _partial_tally(unit: DesiredUnit, rows: list[StoredResult]) -> Tally:
    by_subtest = {row.subtest: row for row in rows}
    statuses = dict.fromkeys(COUNT_KEYS, 0)
    seconds, timed = 0.0, 0
    for subtest in unit.subtests:
        row = by_subtest.get(subtest)
        statuses[row.status.value if row else PENDING] += 1
        if row and row.status is not Status.ERROR and row.duration is not None:
            seconds += row.duration
            timed += 1
    passed, failed, skipped, timed_out, errors, pending = (statuses[key] for key in COUNT_KEYS)
    return (passed, failed, skipped, timed_out, errors, pending, seconds, timed)


@contextmanager
def local_queries(workspace: Workspace, *, fetch: bool = False) -> Iterator[StoreQueries]:
    """Queries over the workspace's specs, git (cached mirrors unless `fetch`) and store."""
    specs = load_specs(workspace.spec_dir)
    planner = Planner(
        git=GitResolver(workspace.git_cache, fetch=fetch),
        cache=SqliteEnumerationCache(workspace.enumeration_cache),
        dependency_root=workspace.dependency_trees,
    )
    desired = planner.desired(specs)
    with ResultStore(workspace.store_dir) as store:
        yield StoreQueries(specs=specs, desired=desired, store=store)
