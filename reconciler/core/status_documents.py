"""The status documents' value types and their JSON shape (see `core.status` for the rules).

Kept apart from the computation so both stay small; `document()` is the one place that decides
field names, which the JSON files, the dashboard and tests all share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.model.results import Status

STATUS_SCHEMA_VERSION = 1
COUNT_KEYS = ("pass", "fail", "skip", "timeout", "error", "pending", "blocked")
SHORT = 12
"""Hex digits of an identity or commit shown to people (DESIGN: "12 characters in UI")."""


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionReason(StrEnum):
    SUCCEEDED = "Succeeded"
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    SUSPENDED = "Suspended"
    BUILD_FAILED = "BuildFailed"
    INFRASTRUCTURE_ERRORS = "InfrastructureErrors"
    RESOLUTION_FAILED = "ResolutionFailed"
    NOT_RESOLVED = "NotResolved"
    TESTS_BLOCKED = "TestsBlocked"


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: ConditionStatus
    reason: ConditionReason
    message: str

    def document(self) -> dict[str, str]:
        return {
            "type": self.type.value,
            "status": self.status.value,
            "reason": self.reason.value,
            "message": self.message,
        }


@dataclass(frozen=True, order=True)
class Regression:
    test: str
    subtest: str
    status: Status


@dataclass(frozen=True)
class ProfileStatus:
    profile: str
    build: str
    """Build identity, shortened to `SHORT` hex digits."""
    counts: Mapping[str, int]
    regressions: tuple[Regression, ...] | None


@dataclass(frozen=True)
class CommitStatus:
    commit: str
    subject: str
    tree: str
    profiles: tuple[ProfileStatus, ...]
    """Sorted by profile name."""


@dataclass(frozen=True, order=True)
class BlockedTest:
    """A test file the branch asks for that could not be planned (see `BlockedWork`)."""

    test: str
    group: str
    reason: str
    message: str
    """Redacted: no URL, no credential."""
    commits: int
    """How many of the branch's commits it is blocked at."""


@dataclass(frozen=True)
class BaselineRef:
    name: str
    commit: str | None
    """None when the baseline is not in the desired state (not resolved this pass)."""


@dataclass(frozen=True)
class BranchStatus:
    host: str
    branch: str
    repo: str
    ref: str
    observed_revision: str
    suspended: bool
    baseline: BaselineRef | None
    conditions: tuple[Condition, ...]
    """Ready, Reconciling, Stalled: always all three, in that order."""
    counts: Mapping[str, int]
    commits: tuple[CommitStatus, ...]
    """Newest first."""
    blocked_tests: tuple[BlockedTest, ...] = ()
    """Sorted by test file."""

    def condition(self, kind: ConditionType) -> Condition:
        return next(c for c in self.conditions if c.type is kind)

    def document(self) -> dict[str, Any]:
        return {
            "kind": "BranchStatus",
            "schema_version": STATUS_SCHEMA_VERSION,
            "host": self.host,
            "branch": self.branch,
            "repo": self.repo,
            "ref": self.ref,
            "observed_revision": self.observed_revision,
            "suspended": self.suspended,
            "baseline": None
            if self.baseline is None
            else {"name": self.baseline.name, "commit": self.baseline.commit},
            "conditions": [c.document() for c in self.conditions],
            "counts": dict(self.counts),
            "commits": [
                {
                    "commit": c.commit,
                    "subject": c.subject,
                    "tree": c.tree,
                    "profiles": {p.profile: _profile_document(p) for p in c.profiles},
                }
                for c in self.commits
            ],
            "blocked_tests": [
                {
                    "test": b.test,
                    "group": b.group,
                    "reason": b.reason,
                    "message": b.message,
                    "commits": b.commits,
                }
                for b in self.blocked_tests
            ],
        }


@dataclass(frozen=True)
class HostStatus:
    host: str
    observed_revision: str
    reconciler_version: str
    branches: tuple[BranchStatus, ...]

    def document(self) -> dict[str, Any]:
        by_condition: dict[str, dict[str, int]] = {
            kind.value: {status.value: 0 for status in ConditionStatus} for kind in ConditionType
        }
        for branch in self.branches:
            for condition in branch.conditions:
                by_condition[condition.type.value][condition.status.value] += 1
        return {
            "kind": "HostStatus",
            "schema_version": STATUS_SCHEMA_VERSION,
            "host": self.host,
            "observed_revision": self.observed_revision,
            "reconciler_version": self.reconciler_version,
            "branch_count": len(self.branches),
            "conditions": by_condition,
            "branches": {
                b.branch: {
                    "ready": b.condition(ConditionType.READY).status.value,
                    "reason": b.condition(ConditionType.READY).reason.value,
                }
                for b in self.branches
            },
        }


def _profile_document(profile: ProfileStatus) -> dict[str, Any]:
    return {
        "build": profile.build,
        "counts": dict(profile.counts),
        "regressions": None
        if profile.regressions is None
        else [
            {"test": r.test, "subtest": r.subtest, "status": r.status.value}
            for r in profile.regressions
        ],
    }
