"""The apply and reconcile use cases, wired from a workspace: store, journal, hosts, adapters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.executors.base import WorkerHost
from reconciler.adapters.executors.pool import hosts_from_specs
from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.harness.registry import adapter_for
from reconciler.adapters.journal import Journal
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.apply import Applier, ApplyEvents, ApplySummary
from reconciler.app.commit_summary import commit_counts, render_commit_summary
from reconciler.app.planning import Planner, Workspace
from reconciler.model.plan import Plan
from reconciler.model.specset import SpecSet


@dataclass(frozen=True)
class HostOptions:
    known_hosts: Path | None = None
    accept_new: bool = False
    local_slots: int | None = None


def worker_hosts(specs: SpecSet, *, workspace: Workspace, options: HostOptions) -> list[WorkerHost]:
    """The hosts batches run on: every WorkerPool's SSH hosts, else the local machine."""
    return hosts_from_specs(
        specs.worker_pools,
        known_hosts=options.known_hosts,
        accept_new=options.accept_new,
        local_workdir=workspace.state_dir / "work",
        local_slots=options.local_slots,
    )


@dataclass(frozen=True)
class ApplyReport:
    summary: ApplySummary
    remaining: Plan
    commits: str


def run_apply(
    workspace: Workspace,
    *,
    options: HostOptions,
    fetch: bool = True,
    events: ApplyEvents | None = None,
    clock: Callable[[], float] = time.time,
) -> ApplyReport:
    specs = load_specs(workspace.spec_dir)
    with ExitStack() as stack:
        store = stack.enter_context(ResultStore(workspace.store_dir))
        cache = stack.enter_context(SqliteEnumerationCache(workspace.enumeration_cache))
        journal = stack.enter_context(Journal.open(workspace.journal, now=clock()))
        planner = Planner(
            git=GitResolver(workspace.git_cache, fetch=fetch),
            cache=cache,
            dependency_root=workspace.dependency_trees,
        )
        hosts = worker_hosts(specs, workspace=workspace, options=options)
        applier = Applier(
            specs=specs,
            planner=planner,
            store=store,
            journal=journal,
            hosts=hosts,
            adapters={name: adapter_for(h, cache=cache) for name, h in specs.harnesses.items()},
            clock=clock,
            events=events or ApplyEvents(),
        )

        async def main() -> ApplySummary:
            try:
                return await applier.run()
            finally:
                for host in hosts:
                    await host.close()

        summary = asyncio.run(main())
        remaining, _ = applier.plan_round()
        desired = planner.desired(specs)
        rows = commit_counts(
            desired,
            statuses_of_unit=lambda unit: {
                row.subtest: row.status for row in store.results_for_unit(unit)
            },
        )
        return ApplyReport(
            summary=summary, remaining=remaining, commits=render_commit_summary(rows)
        )
