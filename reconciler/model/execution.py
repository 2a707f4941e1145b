"""Work as it is dispatched: builds, batches, workers and what a run reports back.

A plan says *what* is missing; these say how it is cut into batches and handed to workers. A
batch is the subtests of one test file for one (build, runtime, harness revision): one unit, or a
slice of it packed to a duration budget. Everything here is data; the scheduler (core) orders and
packs it, the executors (adapters) carry it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.desired import Origin
from reconciler.model.results import Status


@dataclass(frozen=True)
class SourceCheckout:
    """Where a worker gets a tree: a repo URL it can fetch and the commit holding the tree."""

    url: str
    commit: str
    tree: str


@dataclass(frozen=True)
class BatchDependency:
    """A harness dependency a batch's test file uses (ktest `require-git`), as workers get it."""

    name: str
    """Its directory under `ktest_deps_dir`."""
    source: SourceCheckout
    links: tuple[str, ...] = ()
    """Paths in the harness checkout where older ktest code looks for it (`tests/fs/xfstests`):
    each becomes a relative link to the dependency's checkout."""


@dataclass(frozen=True)
class BuildJob:
    """One build identity and what a worker needs to produce it."""

    build: str
    """Build identity (hex)."""
    preimage: Mapping[str, Any]
    source: SourceCheckout
    harness: str
    """Name of the Harness spec; its adapter knows the build command."""
    profile: str
    arch: str
    build_env: Mapping[str, str] = field(default_factory=dict)
    make_flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Batch:
    """Subtests of one unit, run together in one session (one VM boot for kernel harnesses)."""

    id: str
    """sha256 over (unit, subtests): the same work always has the same batch id."""
    build: BuildJob
    unit: str
    unit_preimage: Mapping[str, Any]
    """Result preimage = this + subtest (see core.identity.result_preimage)."""
    test: str
    group: str
    subtests: tuple[str, ...]
    timeout: int
    """Seconds per subtest before it counts as `timeout`."""
    estimated_seconds: float
    committed_at: int
    priority: int
    origin: Origin
    tests_source: SourceCheckout | None = None
    """The harness checkout, when the tests live in the harness repo rather than the source."""
    runtime_env: Mapping[str, str] = field(default_factory=dict)
    worker_tags: frozenset[str] = frozenset()
    """Tags a worker must have to take this batch."""
    confirm_failures: int = 0
    """Re-run a failing subtest this many times, recording every attempt."""
    dependencies: tuple[BatchDependency, ...] = ()
    """The harness dependencies the test file uses, provisioned beside the harness checkout."""

    @property
    def arch(self) -> str:
        return self.build.arch


@dataclass(frozen=True)
class WorkerSlot:
    """One slot of one worker host, as the scheduler sees it."""

    host: str
    slot: int
    arch: str
    tags: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return f"{self.host}/{self.slot}"

    def accepts(self, batch: Batch) -> bool:
        return batch.arch == self.arch and batch.worker_tags <= self.tags


@dataclass(frozen=True)
class Assignment:
    batch: Batch
    slot: WorkerSlot


@dataclass(frozen=True)
class CommandResult:
    """What running one shell command on a worker host gave."""

    exit_status: int | None
    """None when the command was killed (timeout) or the connection dropped."""
    output: bytes
    """stdout and stderr, interleaved as the command wrote them."""
    timed_out: bool = False
    duration: float = 0.0


@dataclass(frozen=True)
class SubtestReport:
    """One subtest's outcome from one run of a batch."""

    subtest: str
    status: Status
    duration: float | None
    message: str | None = None
    log: bytes = b""
