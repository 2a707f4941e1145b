"""What the query commands (`branches`, `log`, `show`, `logs`) answer, as plain values.

The same values come from the local store (`app.queries`) or from a dashboard's published JSON
(`app.query_remote`); each has `as_json()` and `from_json()` that round-trip exactly, so
`--json` prints the same document whichever side answered, and the dashboard's files are these
documents (one source of truth for their shape).

Counts follow the project's statuses: `pass`, `fail`, `skip`, `timeout` are verdicts, `error`
is an infrastructure outcome (shown apart, never a failure), `pending` is a desired result the
store does not hold yet. Durations are sums over verdicts that carry a duration, and `None`
when none does (unknown is not zero).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from reconciler.core.status_documents import SHORT

PENDING = "pending"
COUNT_KEYS = ("pass", "fail", "skip", "timeout", "error", "pending")
SHOW_ORDER = {status: rank for rank, status in enumerate(("fail", "timeout", "error", PENDING))}
"""`show` lists failures first: fail, timeout, error, then pending, skip, pass."""
SHOW_ORDER |= {"skip": 4, "pass": 5}
FAILURES = frozenset({"fail", "timeout", "error"})
"""What `logs COMMIT` lists: everything that did not give a pass or a skip."""

Json = dict[str, Any]


def short(commit: str) -> str:
    return commit[:SHORT]


def _add_durations(left: float | None, right: float | None) -> float | None:
    if left is None:
        return right
    return left if right is None else left + right


@dataclass(frozen=True)
class Counts:
    """Desired results of a commit (or a part of one) by status, and their summed duration."""

    by_status: Mapping[str, int] = field(default_factory=dict)
    duration: float | None = None

    def __post_init__(self) -> None:
        # Every key present, so equal counts compare equal however they were built.
        full = {key: int(self.by_status.get(key, 0)) for key in COUNT_KEYS}
        object.__setattr__(self, "by_status", full)

    def __getitem__(self, status: str) -> int:
        return self.by_status.get(status, 0)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            by_status={key: self[key] + other[key] for key in COUNT_KEYS},
            duration=_add_durations(self.duration, other.duration),
        )

    @property
    def total(self) -> int:
        return sum(self[key] for key in COUNT_KEYS)

    @property
    def tested(self) -> bool:
        """Something is stored: a result with a verdict or an infrastructure error."""
        return self.total > self[PENDING]

    @classmethod
    def of(cls, statuses: Iterable[str], *, duration: float | None = None) -> Counts:
        by_status = dict.fromkeys(COUNT_KEYS, 0)
        for status in statuses:
            by_status[status] += 1
        return cls(by_status=by_status, duration=duration)

    @classmethod
    def sum(cls, parts: Iterable[Counts]) -> Counts:
        total = cls.of(())
        for part in parts:
            total += part
        return total

    def as_json(self) -> Json:
        return {key: self[key] for key in COUNT_KEYS} | {
            "total": self.total,
            "duration": self.duration,
        }

    @classmethod
    def from_json(cls, data: Json) -> Counts:
        return cls(by_status={key: int(data[key]) for key in COUNT_KEYS}, duration=data["duration"])


@dataclass(frozen=True)
class BranchSummary:
    """One row of `branches`: a Branch or Baseline spec and its newest commit's counts."""

    name: str
    kind: str
    """`branch` or `baseline`."""
    ref: str
    suspended: bool
    commit: str | None
    """Newest commit in the desired state; None when suspended or not resolved."""
    subject: str | None
    counts: Counts | None

    def as_json(self) -> Json:
        return {
            "name": self.name,
            "kind": self.kind,
            "ref": self.ref,
            "suspended": self.suspended,
            "commit": self.commit,
            "subject": self.subject,
            "counts": None if self.counts is None else self.counts.as_json(),
        }

    @classmethod
    def from_json(cls, data: Json) -> BranchSummary:
        counts = data["counts"]
        return cls(
            name=data["name"],
            kind=data["kind"],
            ref=data["ref"],
            suspended=data["suspended"],
            commit=data["commit"],
            subject=data["subject"],
            counts=None if counts is None else Counts.from_json(counts),
        )


@dataclass(frozen=True)
class Branches:
    branches: tuple[BranchSummary, ...]

    def as_json(self) -> Json:
        return {"branches": [row.as_json() for row in self.branches]}

    @classmethod
    def from_json(cls, data: Json) -> Branches:
        return cls(tuple(BranchSummary.from_json(row) for row in data["branches"]))


@dataclass(frozen=True)
class LogEntry:
    """One commit of a branch log: counts per profile; `counts` sums them."""

    commit: str
    subject: str
    committed_at: int
    profiles: Mapping[str, Counts]

    @property
    def counts(self) -> Counts:
        return Counts.sum(self.profiles[name] for name in sorted(self.profiles))

    def as_json(self) -> Json:
        return {
            "commit": self.commit,
            "subject": self.subject,
            "committed_at": self.committed_at,
            "tested": self.counts.tested,
            "counts": self.counts.as_json(),
            "profiles": {name: self.profiles[name].as_json() for name in sorted(self.profiles)},
        }

    @classmethod
    def from_json(cls, data: Json) -> LogEntry:
        return cls(
            commit=data["commit"],
            subject=data["subject"],
            committed_at=data["committed_at"],
            profiles={name: Counts.from_json(c) for name, c in data["profiles"].items()},
        )


@dataclass(frozen=True)
class BranchLog:
    """`log BRANCH`: the branch's window of commits, newest first."""

    branch: str
    kind: str
    suspended: bool
    commits: tuple[LogEntry, ...]

    def with_profile(self, profile: str | None) -> BranchLog:
        """Only `profile`'s counts (commits it does not cover drop out); None: all of them."""
        if profile is None:
            return self
        commits = tuple(
            replace(entry, profiles={profile: entry.profiles[profile]})
            for entry in self.commits
            if profile in entry.profiles
        )
        return replace(self, commits=commits)

    def as_json(self) -> Json:
        return {
            "branch": self.branch,
            "kind": self.kind,
            "suspended": self.suspended,
            "commits": [entry.as_json() for entry in self.commits],
        }

    @classmethod
    def from_json(cls, data: Json) -> BranchLog:
        return cls(
            branch=data["branch"],
            kind=data["kind"],
            suspended=data["suspended"],
            commits=tuple(LogEntry.from_json(entry) for entry in data["commits"]),
        )


class TestRow(NamedTuple):
    """One desired result of a commit: a test file's subtest under one profile (a tuple: a
    13,000-test commit makes 13,000 of them per `show`)."""

    test: str
    subtest: str
    profile: str
    status: str
    """A status value, or `pending` when the store holds nothing for it."""
    duration: float | None
    result: str | None
    """The result identity; None while pending."""

    @property
    def name(self) -> str:
        return f"{self.test}:{self.subtest}"

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        return (SHOW_ORDER[self.status], self.test, self.subtest, self.profile)

    def as_json(self) -> Json:
        return {
            "test": self.test,
            "subtest": self.subtest,
            "profile": self.profile,
            "status": self.status,
            "duration": self.duration,
            "result": self.result,
        }

    @classmethod
    def from_json(cls, data: Json) -> TestRow:
        return cls(**{key: data[key] for key in cls._fields})


def counts_of_rows(rows: Iterable[TestRow]) -> Counts:
    """Counts of listed rows; durations only of verdicts (an error's says nothing)."""
    statuses, duration = [], None
    for row in rows:
        statuses.append(row.status)
        if row.status not in ("error", PENDING) and row.duration is not None:
            duration = _add_durations(duration, row.duration)
    return Counts.of(statuses, duration=duration)


@dataclass(frozen=True)
class CommitResults:
    """`show COMMIT`: every desired result of the commit, failures first."""

    commit: str
    subject: str
    origins: tuple[str, ...]
    """Branches and baselines (`baseline:NAME`) whose window holds the commit."""
    tests: tuple[TestRow, ...]

    @property
    def counts(self) -> Counts:
        return counts_of_rows(self.tests)

    def with_profile(self, profile: str | None) -> CommitResults:
        if profile is None:
            return self
        return replace(self, tests=tuple(row for row in self.tests if row.profile == profile))

    def as_json(self) -> Json:
        return {
            "commit": self.commit,
            "subject": self.subject,
            "origins": list(self.origins),
            "counts": self.counts.as_json(),
            "tests": [row.as_json() for row in self.tests],
        }

    @classmethod
    def from_json(cls, data: Json) -> CommitResults:
        return cls(
            commit=data["commit"],
            subject=data["subject"],
            origins=tuple(data["origins"]),
            tests=tuple(TestRow.from_json(row) for row in data["tests"]),
        )


@dataclass(frozen=True)
class FailureListing:
    """`logs COMMIT` without a test: what failed (fail, timeout, error), to pick a log from."""

    commit: str
    subject: str
    failures: tuple[TestRow, ...]

    @classmethod
    def of(cls, results: CommitResults) -> FailureListing:
        failures = tuple(row for row in results.tests if row.status in FAILURES)
        return cls(commit=results.commit, subject=results.subject, failures=failures)

    def as_json(self) -> Json:
        return {
            "commit": self.commit,
            "subject": self.subject,
            "failures": [row.as_json() for row in self.failures],
        }


@dataclass(frozen=True)
class LogText:
    """One result's log: the part of its batch log about its subtest, or the whole of it."""

    row: TestRow
    attempt: int
    """1-based attempt whose log this is."""
    scope: str
    """`subtest` (sliced out of the batch log), `batch` (the whole log) or `none` (no log)."""
    note: str | None
    """Why the scope is not what was asked for, or that no log is stored."""
    text: str

    def as_json(self) -> Json:
        return self.row.as_json() | {
            "attempt": self.attempt,
            "scope": self.scope,
            "note": self.note,
            "text": self.text,
        }


@dataclass(frozen=True)
class CommitLogs:
    """`logs COMMIT TEST`: the logs of every stored result TEST names (one per profile)."""

    commit: str
    logs: tuple[LogText, ...]

    def as_json(self) -> Json:
        return {"commit": self.commit, "logs": [log.as_json() for log in self.logs]}
