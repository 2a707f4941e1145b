"""A plan: what the store lacks, in the order it should run, each item with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from reconciler.model.desired import BlockedWork, Origin


class Reason(StrEnum):
    MISSING = "missing"
    """No stored verdict for this identity."""
    PARTIAL = "partial"
    """Some subtests of the unit are stored; the rest must run."""
    REUSED = "reused"
    """Every subtest already has a verdict in the store."""
    REUSED_FROM_BASELINE = "reused-from-baseline"
    """Reused, and the identity is one a Baseline asks for: the baseline's results serve."""
    BLOCKED = "blocked"
    """The build failed (a verdict on the build): nothing runs until build inputs change."""
    ERROR_RETRY = "error-retry"
    """Only infrastructure errors are stored: run again."""
    REUSED_SAME_IMAGE = "reused-same-image"
    """Not tested under this build, but its boot image is byte-identical to another build's
    whose results for the same runtime, harness and test are complete: those results serve
    (copied under this build's identities when applied), and no VM boots."""


RUN_REASONS = frozenset({Reason.MISSING, Reason.PARTIAL, Reason.ERROR_RETRY})
REUSE_REASONS = frozenset({Reason.REUSED, Reason.REUSED_FROM_BASELINE, Reason.REUSED_SAME_IMAGE})


class PlannedUnit(NamedTuple):
    """One test file of one slot. A NamedTuple, not a dataclass: a farm-scale plan holds ~10^5 of
    these and a frozen dataclass costs several times more to construct."""

    origin: Origin
    commit: str
    subject: str
    committed_at: int
    profile: str
    harness: str
    group: str
    test: str
    unit: str
    build: str
    reason: Reason
    subtests_total: int
    to_run: tuple[str, ...]
    """Subtests that must run (empty when reused or blocked)."""
    priority: int
    estimated_seconds: float


@dataclass(frozen=True)
class PlannedBuild:
    build: str
    reason: Reason
    """`missing`, `reused`, `blocked` (stored failure) or `error-retry`."""
    origins: tuple[Origin, ...]
    commit: str
    profile: str


@dataclass(frozen=True)
class Totals:
    """Counts of distinct identities: work two branches share is counted once."""

    builds_run: int = 0
    builds_reused: int = 0
    builds_blocked: int = 0
    results_run: int = 0
    results_reused: int = 0
    results_reused_from_baselines: int = 0
    """Part of `results_reused`."""
    results_blocked: int = 0
    estimated_seconds: float = 0.0


@dataclass(frozen=True)
class OriginSummary:
    """One row of the per-branch table (counts within the origin, not deduplicated across)."""

    origin: Origin
    commits: int
    profiles: int
    results_run: int
    results_reused: int
    results_reused_from_baselines: int
    results_blocked: int
    builds_run: int
    estimated_seconds: float


@dataclass(frozen=True)
class Estimates:
    """Durations assumed where the store has no history."""

    subtest_seconds: float = 30.0
    build_seconds: float = 600.0


@dataclass(frozen=True)
class Plan:
    totals: Totals
    items: tuple[PlannedUnit, ...]
    """Newest commit first, then priority (higher first)."""
    builds: tuple[PlannedBuild, ...]
    origins: tuple[OriginSummary, ...]
    suspended: tuple[str, ...] = ()
    estimates: Estimates = Estimates()
    """What the estimate assumed where the store had no durations."""
    blocked: tuple[BlockedWork, ...] = ()
    """Work the specs ask for that could not be planned, with why; the rest is planned."""

    @property
    def has_work(self) -> bool:
        return self.totals.results_run > 0 or self.totals.builds_run > 0

    @property
    def partly_blocked(self) -> bool:
        return bool(self.blocked)
