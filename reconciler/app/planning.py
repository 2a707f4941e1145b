"""The plan use case: specs → git resolution → enumeration → desired state → store snapshot → plan.

Each step's I/O lives in an adapter handed in here, so tests can swap git for its in-memory twin
and the bench can plan a farm-sized state without touching git.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler.adapters.git import GitSource
from reconciler.adapters.harness.enumeration_cache import EnumerationCache
from reconciler.adapters.harness.ktest_deps import DependencyTrees, dependency_repo, read_texts
from reconciler.adapters.harness.registry import adapter_for
from reconciler.adapters.toolchain_probe import ToolchainResolver, resolve_toolchains
from reconciler.core.desired import SlotMemo, desired_state, enumeration_requests
from reconciler.core.ktest_deps import RequireGit, declared_dependencies
from reconciler.core.planner import PlanMemo, plan
from reconciler.core.toolchain import toolchains_in_use
from reconciler.model.desired import (
    DesiredState,
    EnumeratedTest,
    Resolution,
    ResolvedBaseline,
    ResolvedBranch,
    ResolvedDependency,
    ResolvedHarness,
    StoreSnapshot,
    UnitSummary,
)
from reconciler.model.errors import InfrastructureError, ReconcilerError, UserError
from reconciler.model.plan import Estimates, Plan
from reconciler.model.results import BuildStatus, Status
from reconciler.model.specs import Harness, Repo
from reconciler.model.specset import SpecSet

STORE_ENV = "RECONCILER_STORE"


@dataclass(frozen=True)
class Workspace:
    """Where a reconciler keeps its things for one spec directory."""

    spec_dir: Path
    store_dir: Path
    state_dir: Path
    """Caches that can be thrown away: git mirrors, enumeration results."""

    @classmethod
    def for_specs(
        cls,
        spec_dir: Path,
        *,
        store: Path | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> Workspace:
        # Beside the spec directory, so specs/ and .reconciler/ sit together in a checkout.
        state_dir = spec_dir.resolve().parent / ".reconciler"
        if store is None and environ.get(STORE_ENV):
            store = Path(environ[STORE_ENV])
        return cls(
            spec_dir=spec_dir,
            store_dir=store if store is not None else state_dir / "store",
            state_dir=state_dir,
        )

    @property
    def git_cache(self) -> Path:
        return self.state_dir / "git"

    @property
    def cache_dir(self) -> Path:
        """What the store can rebuild at any time: listings and dependency exports."""
        return self.store_dir / "cache"

    @property
    def enumeration_cache(self) -> Path:
        return self.cache_dir / "enumeration.sqlite"

    @property
    def dependency_trees(self) -> Path:
        """Exported trees of harness dependencies (ktest `require-git`), one per tree hash."""
        return self.cache_dir / "trees"

    @property
    def journal(self) -> Path:
        """Leases of dispatched batches; beside the store it guards, one journal per store."""
        return self.store_dir.parent / f"{self.store_dir.name}.journal.sqlite"


class ResolutionErrors(ReconcilerError):
    """Every git problem of a spec set, reported together; infrastructure wins the exit code."""

    def __init__(self, errors: list[ReconcilerError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
        if any(isinstance(e, InfrastructureError) for e in errors):
            self.exit_code = InfrastructureError.exit_code

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def harness_repo(harness: Harness) -> Repo:
    """A harness with a url is read through the same git adapter as source repos."""
    if harness.url is None:
        raise UserError(f"harness {harness.name!r} has no url")
    return Repo(kind="Repo", name=harness.name, url=harness.url)


def resolve(
    specs: SpecSet, *, git: GitSource, toolchains: ToolchainResolver = resolve_toolchains
) -> Resolution:
    errors: list[ReconcilerError] = []
    branches: dict[str, ResolvedBranch] = {}
    baselines: dict[str, ResolvedBaseline] = {}
    harnesses: dict[str, ResolvedHarness] = {}
    for branch in specs.branches.values():
        if branch.suspend:
            continue
        try:
            commits = git.branch_commits(
                repo=specs.repos[branch.repo],
                ref=branch.ref,
                max_commits=branch.max_commits,
                asked_by=specs.where(branch),
            )
            branches[branch.name] = ResolvedBranch(branch.name, branch.ref, commits)
        except ReconcilerError as error:
            errors.append(error)
    for baseline in specs.baselines.values():
        try:
            commit = git.resolve_commit(
                repo=specs.repos[baseline.repo], ref=baseline.ref, asked_by=specs.where(baseline)
            )
            baselines[baseline.name] = ResolvedBaseline(baseline.name, commit)
        except ReconcilerError as error:
            errors.append(error)
    for harness in specs.harnesses.values():
        if harness.url is None or harness.ref is None:
            continue
        try:
            commit = git.resolve_commit(
                repo=harness_repo(harness), ref=harness.ref, asked_by=specs.where(harness)
            )
            harnesses[harness.name] = ResolvedHarness(
                harness.name,
                commit.tree,
                commit.commit,
                dependencies=resolve_dependencies(
                    harness, git=git, tree=commit.tree, asked_by=specs.where(harness)
                ),
            )
        except ReconcilerError as error:
            errors.append(error)
    if errors:
        raise ResolutionErrors(errors)
    return Resolution(
        branches=branches,
        baselines=baselines,
        harnesses=harnesses,
        # On this host, each time: a compiler upgraded between passes gives new identities.
        toolchains=toolchains(toolchains_in_use(specs)),
    )


_DECLARED: dict[str, tuple[RequireGit, ...]] = {}
"""Harness tree -> its `require-git` lines; a tree's content never changes, so neither do they."""


def _declared(harness: Harness, *, git: GitSource, tree: str) -> tuple[RequireGit, ...]:
    if tree not in _DECLARED:
        with tempfile.TemporaryDirectory(prefix="reconciler-harness-") as scratch:
            git.tree_view(repo=harness_repo(harness), tree=tree).export(Path(scratch))
            _DECLARED[tree] = declared_dependencies(read_texts(Path(scratch)))
    return _DECLARED[tree]


def resolve_dependencies(
    harness: Harness, *, git: GitSource, tree: str, asked_by: str
) -> tuple[ResolvedDependency, ...]:
    """Each pinned dependency of `harness` at its ref; one that does not resolve is kept with
    why, so only the test files that use it are blocked, not the plan. Each carries the paths
    where the harness tree's older code looks for it (`RequireGit.link_path`)."""
    if not harness.dependencies:
        return ()
    declared = _declared(harness, git=git, tree=tree)
    resolved = []
    for dependency in harness.dependencies:
        links = tuple(
            sorted(
                {
                    r.link_path
                    for r in declared
                    if r.name == dependency.name and not r.link_path.startswith(("..", "/"))
                }
            )
        )
        try:
            commit = git.resolve_commit(
                repo=dependency_repo(harness, dependency),
                ref=dependency.ref,
                asked_by=f"{asked_by}: dependency {dependency.name!r}",
            )
        except ReconcilerError as error:
            resolved.append(
                ResolvedDependency(
                    dependency.name,
                    dependency.url,
                    dependency.ref,
                    problem=error.message,
                    links=links,
                )
            )
        else:
            resolved.append(
                ResolvedDependency(
                    dependency.name,
                    dependency.url,
                    dependency.ref,
                    commit.commit,
                    commit.tree,
                    links=links,
                )
            )
    return tuple(resolved)


class _GitExporter:
    def __init__(self, git: GitSource) -> None:
        self._git = git

    def export_tree(self, *, repo: Repo, tree: str, dest: Path) -> None:
        self._git.tree_view(repo=repo, tree=tree).export(dest)


def enumerate_tests(
    specs: SpecSet,
    *,
    resolution: Resolution,
    git: GitSource,
    cache: EnumerationCache,
    dependency_root: Path,
) -> dict[tuple[str, str], tuple[EnumeratedTest, ...]]:
    enumeration: dict[tuple[str, str], tuple[EnumeratedTest, ...]] = {}
    for group_name, tree, repo_name in enumeration_requests(specs=specs, resolution=resolution):
        group = specs.test_groups[group_name]
        harness = specs.harnesses[group.harness]
        repo = specs.repos[repo_name] if repo_name is not None else harness_repo(harness)
        view = git.tree_view(repo=repo, tree=tree)
        resolved = resolution.harnesses.get(harness.name)
        dependencies = DependencyTrees(
            harness=harness,
            resolved=resolved.dependencies if resolved is not None else (),
            root=dependency_root,
            exporter=_GitExporter(git),
        )
        adapter = adapter_for(harness, cache=cache, dependencies=dependencies)
        enumeration[(group_name, tree)] = adapter.enumerate(group=group, tree=view)
    return enumeration


class SnapshotSource(Protocol):
    """What the planner needs from a store index; the SQLite index implements it."""

    def snapshot(self, desired: DesiredState) -> StoreSnapshot: ...


@dataclass
class Planner:
    """Plans a spec set against a store, remembering what it can between passes."""

    git: GitSource
    cache: EnumerationCache
    dependency_root: Path | None = None
    """Where harness dependencies are exported for listing (`Workspace.dependency_trees`);
    None: a temporary directory of this planner's."""
    estimates: Estimates = field(default_factory=Estimates)
    slot_memo: SlotMemo = field(default_factory=SlotMemo)
    plan_memo: PlanMemo = field(default_factory=PlanMemo)

    resolution: Resolution = field(default_factory=Resolution)
    """What git said in the last `desired()` call (harness commits for workers)."""

    def desired(self, specs: SpecSet) -> DesiredState:
        resolution = resolve(specs, git=self.git)
        self.resolution = resolution
        if self.dependency_root is None:
            self.dependency_root = Path(tempfile.mkdtemp(prefix="reconciler-deps-"))
            atexit.register(shutil.rmtree, self.dependency_root, ignore_errors=True)
        enumeration = enumerate_tests(
            specs,
            resolution=resolution,
            git=self.git,
            cache=self.cache,
            dependency_root=self.dependency_root,
        )
        return desired_state(
            specs=specs, resolution=resolution, enumeration=enumeration, memo=self.slot_memo
        )

    def plan(self, desired: DesiredState, snapshot: StoreSnapshot) -> Plan:
        return plan(desired, snapshot, estimates=self.estimates, memo=self.plan_memo)


class GenerationalIndex(SnapshotSource, Protocol):
    @property
    def generation(self) -> int: ...


class IncrementalSnapshots:
    """Snapshots of a store index that read only slots earlier passes have not read.

    Valid while the index generation stays the same (no result written in between); a new
    generation starts over. Slots are recognised by their units object, which the desired-state
    memo hands out again for unchanged slots.
    """

    def __init__(self, index: GenerationalIndex) -> None:
        self.index = index
        self._generation: int | None = None
        self._seen: dict[int, object] = {}
        self._units: dict[str, UnitSummary] = {}
        self._subtests: dict[str, Mapping[str, Status]] = {}
        self._builds: dict[str, BuildStatus] = {}
        self._mean: dict[str, float] = {}

    def snapshot(self, desired: DesiredState) -> StoreSnapshot:
        generation = self.index.generation
        if generation != self._generation:
            self._generation = generation
            for cache in (self._seen, self._units, self._subtests, self._builds, self._mean):
                cache.clear()
        new_slots = tuple(slot for slot in desired.slots if id(slot.units) not in self._seen)
        if new_slots:
            part = self.index.snapshot(DesiredState(slots=new_slots))
            self._units.update(part.units)
            self._subtests.update(part.subtests)
            self._builds.update(part.builds)
            self._mean.update(part.mean_subtest_seconds)
            for slot in new_slots:
                # Holding the units keeps their id() from being reused by another object.
                self._seen[id(slot.units)] = slot.units
        return StoreSnapshot(
            units=self._units,
            subtests=self._subtests,
            builds=self._builds,
            mean_subtest_seconds=self._mean,
            generation=generation,
        )
