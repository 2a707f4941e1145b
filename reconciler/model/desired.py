"""What git told us (resolution), what harnesses enumerated, and the desired state built from them.

These are the inputs of the pure planner. They hold identities and provenance; the planner never
reads git or the store itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.model.results import BuildStatus, Status


@dataclass(frozen=True)
class ResolvedCommit:
    commit: str
    tree: str
    subject: str
    committed_at: int
    """Committer time, Unix seconds: orders work age-major across branches."""


@dataclass(frozen=True)
class ResolvedBranch:
    branch: str
    """Name of the Branch spec."""
    ref: str
    commits: tuple[ResolvedCommit, ...]
    """Newest first, first-parent, at most `max_commits`."""


@dataclass(frozen=True)
class ResolvedBaseline:
    baseline: str
    commit: ResolvedCommit


@dataclass(frozen=True)
class ResolvedDependency:
    """A pinned dependency of a harness (`HarnessDependency`), as git resolved it, or why not."""

    name: str
    url: str
    ref: str
    commit: str | None = None
    tree: str | None = None
    problem: str | None = None
    """Why it did not resolve (unreachable, unknown ref); None when it did."""
    links: tuple[str, ...] = ()
    """Where the harness tree's `require-git` lines say older code looks for it, relative to
    the tree (`tests/fs/xfstests`)."""


@dataclass(frozen=True)
class ResolvedHarness:
    harness: str
    revision: str
    """Tree hash of the harness repo at its ref, or the hash of its definition when the tests
    live in the source tree (no url)."""
    commit: str | None = None
    dependencies: tuple[ResolvedDependency, ...] = ()


@dataclass(frozen=True)
class ResolvedToolchain:
    """A Profile's toolchain as the planning host found it: the concrete compiler, or why not."""

    name: str
    """As the Profile writes it (`clang`, `gcc-12`, a path)."""
    version: str | None = None
    """First line of `<compiler> --version` on the planning host; None for a Nix store path
    (its path pins its content) and when the toolchain could not be resolved."""
    store_path: str | None = None
    """The Nix store path the toolchain lives in, when it is one."""
    problem: str | None = None
    """Why it could not be resolved (not installed, `--version` failed); None when it was."""


@dataclass(frozen=True)
class Resolution:
    branches: Mapping[str, ResolvedBranch] = field(default_factory=dict)
    baselines: Mapping[str, ResolvedBaseline] = field(default_factory=dict)
    harnesses: Mapping[str, ResolvedHarness] = field(default_factory=dict)
    toolchains: Mapping[str, ResolvedToolchain] = field(default_factory=dict)
    """Profile toolchain name -> the concrete compiler it resolved to on the planning host."""


class BlockReason(StrEnum):
    """Why part of the desired state cannot be planned at all (its identities are unknown)."""

    LISTING_FAILED = "listing-failed"
    """The harness could not list a test file's subtests (it failed, hung, or printed
    something that is not a subtest name)."""
    DEPENDENCY_UNRESOLVED = "dependency-unresolved"
    """A dependency the test file needs (a ktest `require-git` repository) did not resolve."""
    TOOLCHAIN_UNAVAILABLE = "toolchain-unavailable"
    """The profile's toolchain could not be resolved to a concrete compiler."""


@dataclass(frozen=True)
class ListingBlock:
    """Why a test file has no subtests to plan: its listing failed, or a dependency it needs
    did not resolve."""

    reason: BlockReason
    message: str


@dataclass(frozen=True)
class EnumeratedTest:
    test: str
    """Test file (or test name) as the harness names it."""
    subtests: tuple[str, ...]
    runtime_match: tuple[tuple[str, str], ...] = ()
    """Runtime inputs a profile must have for this test to apply, e.g. (("fstype", "xfs"),)
    for fstests' xfs/ directory; empty for tests every profile runs."""
    dependencies: tuple[tuple[str, str], ...] = ()
    """(name, tree) of each harness dependency this test file uses, sorted: inputs of its
    results' identity, and of no other test file's."""
    blocked: ListingBlock | None = None
    """Set when the file could not be enumerated; `subtests` is then empty."""


# (test group name, tree the tests were read from) -> tests of that group in that tree.
Enumeration = Mapping[tuple[str, str], tuple[EnumeratedTest, ...]]


class OriginKind(StrEnum):
    BRANCH = "branch"
    BASELINE = "baseline"


@dataclass(frozen=True, order=True)
class Origin:
    """Who asked for a piece of work: provenance, never identity."""

    kind: OriginKind
    name: str

    def __str__(self) -> str:
        return self.name if self.kind is OriginKind.BRANCH else f"baseline:{self.name}"


@dataclass(frozen=True)
class DesiredBuild:
    id: str
    preimage: Mapping[str, Any]


@dataclass(frozen=True)
class DesiredUnit:
    """Subtests of one test file for one (build, runtime, harness revision): the planning grain."""

    unit: str
    test: str
    group: str
    subtests: tuple[str, ...]
    priority: int
    preimage: Mapping[str, Any]
    """Unit preimage; a result's preimage is this plus its subtest."""


@dataclass(frozen=True)
class DesiredSlot:
    """One commit of one origin under one profile and harness: a build and its units."""

    origin: Origin
    commit: ResolvedCommit
    position: int
    """0 for the newest commit of the origin."""
    profile: str
    harness: str
    build: DesiredBuild
    units: tuple[DesiredUnit, ...]
    priority: int


@dataclass(frozen=True)
class BlockedWork:
    """Desired work that cannot be planned, and why: reported everywhere, never dropped silently.

    The rest of the plan goes on without it. `test` is None when a whole test group or slot is
    blocked; `profile` is None when the block holds under every profile.
    """

    reason: BlockReason
    message: str
    """What is wrong and what to do, for people; quotes the offending output where there is
    one."""
    harness: str
    group: str | None = None
    test: str | None = None
    profile: str | None = None
    origins: tuple[Origin, ...] = ()
    """Who asked for the blocked work, sorted."""
    commits: tuple[str, ...] = ()
    """Commits of those origins the block holds at (empty: a harness-wide block)."""


@dataclass(frozen=True)
class DesiredState:
    slots: tuple[DesiredSlot, ...]
    suspended: tuple[str, ...] = ()
    """Branches marked `suspend: true`: shown, never scheduled."""
    blocked: tuple[BlockedWork, ...] = ()
    """What the specs ask for but cannot be planned (failed listings, unresolved
    dependencies, unavailable toolchains)."""


@dataclass(frozen=True)
class UnitSummary:
    verdicts: int
    """Stored results of this unit that hold a verdict."""
    errors: int = 0
    """Stored results of this unit whose only outcome is an infrastructure error."""


@dataclass(frozen=True)
class StoreSnapshot:
    """What the planner needs to know of the store, read once by the app from the index."""

    units: Mapping[str, UnitSummary] = field(default_factory=dict)
    subtests: Mapping[str, Mapping[str, Status]] = field(default_factory=dict)
    """For units whose summary does not settle them (partial): stored subtest -> status."""
    builds: Mapping[str, BuildStatus] = field(default_factory=dict)
    mean_subtest_seconds: Mapping[str, float] = field(default_factory=dict)
    """Historical mean duration of one subtest, per test file."""
    same_image: Mapping[str, str] = field(default_factory=dict)
    """Unit -> a complete unit of another build with a byte-identical boot image and otherwise
    the same inputs (see `Reason.REUSED_SAME_IMAGE`); only for units not complete themselves."""
    generation: int | None = None
    """The index generation this snapshot was read at: equal generations mean equal store
    contents, which lets a planner memo reuse work. None: no reuse."""
