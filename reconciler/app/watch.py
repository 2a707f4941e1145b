"""`reconciler watch`: the controller loop run as a service on the dashboard host.

A *pass* loads the specs, resolves the branches (fetching remotes), plans, applies and writes
status back to the spec repo. Passes are triggered by:

- a change in the spec checkout (watchfiles, debounced, so a `git pull` is one trigger);
- new commits on a tracked branch (its remote is polled every `fetch_interval`);
- the periodic `interval`, whatever happened (results that cooled down get retried).

One watcher per spec checkout and per store: two locks, each refusal naming the holder. A
failed pass is logged and retried with exponential backoff (tenacity), never fatal; a spec that
does not validate is reported and waited out until it changes. SIGTERM or SIGINT stops
dispatching: running batches finish (a second signal cuts them short and releases their leases;
what they already reported stays stored), status is written, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import tenacity
import watchfiles

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.harness.registry import adapter_for
from reconciler.adapters.journal import Journal
from reconciler.adapters.owner_lock import OwnerLock
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.apply import Applier, ApplySummary
from reconciler.app.applying import HostOptions, worker_hosts
from reconciler.app.backoff import wait_seconds
from reconciler.app.planning import Planner, ResolutionErrors, Workspace
from reconciler.model.desired import DesiredState
from reconciler.model.errors import ReconcilerError, UserError
from reconciler.model.specset import SpecSet

log = logging.getLogger(__name__)

ERROR_BACKOFF = tenacity.wait_exponential(multiplier=5, min=5, max=300)
"""Seconds before the pass after a failed one: 5, 10, 20 ... at most 300."""


@dataclass(frozen=True)
class WatchOptions:
    interval: float = 300.0
    """Seconds between passes when nothing else triggers one."""
    fetch_interval: float = 60.0
    """Seconds between polls of tracked branches' remotes for new commits."""
    debounce: float = 2.0
    """Seconds a burst of spec edits is gathered into one trigger."""
    once: bool = False
    host_id: str = field(default_factory=socket.gethostname)
    status: bool = True
    """Write status back to the spec repo after each pass."""
    status_branch: str = "reconciler/status"
    status_remote: str | None = "origin"
    dashboard: Path | None = None
    """Regenerate the static dashboard here after each pass (only changed files are written)."""


@dataclass
class PassReport:
    number: int
    trigger: str
    summary: ApplySummary | None = None
    status_commit: str | None = None
    error: str | None = None
    dashboard_changed: int | None = None
    """Files the dashboard regeneration wrote or removed, when a dashboard is kept."""
    exit_code: int = 0
    """What `watch --once` exits with: the failed pass's error code, else 0."""


def stalled_branches(specs: SpecSet, error: ReconcilerError) -> dict[str, str]:
    """Which branches a failed pass leaves stalled, and why (one line each).

    A git error names the spec that asked for it; a branch's own error stalls that branch, any
    other (its baseline's, a harness's, the store's) stalls every branch that could not run.
    """
    errors = error.errors if isinstance(error, ResolutionErrors) else [error]
    by_location = {specs.where(branch): name for name, branch in specs.branches.items()}
    stalled: dict[str, str] = {}
    shared: list[str] = []
    for each in errors:
        branch = by_location.get(each.where or "")
        if branch is not None:
            stalled[branch] = each.message
        else:
            shared.append(each.message)
    if shared:
        for name in specs.branches:
            stalled.setdefault(name, "; ".join(shared))
    return stalled


class Watcher:
    def __init__(
        self,
        workspace: Workspace,
        *,
        options: WatchOptions,
        hosts: HostOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workspace = workspace
        self.options = options
        self.host_options = hosts
        self.clock = clock
        self.stop = asyncio.Event()
        self.spec_changed = asyncio.Event()
        self.passes: list[PassReport] = []
        self._heads: dict[str, str] = {}
        self._signals = 0

    def request_stop(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stopping: no new batches; running ones finish (signal again to cut short)")
            self.stop.set()
        else:
            log.info("stopping now: cutting running batches short")
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task() and task.get_name() == "reconcile-pass":
                    task.cancel()

    async def run(self) -> int:
        if not self.workspace.spec_dir.is_dir():
            # Under systemd the checkout may not be cloned yet: fail, and be restarted.
            raise UserError(
                f"spec directory {self.workspace.spec_dir} does not exist",
                hint="clone the spec repo there (or pass --specs DIR)",
            )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        with ExitStack() as stack:
            now = self.clock()
            # The spec checkout's lock: two watchers on one checkout would race on its status.
            stack.enter_context(
                OwnerLock.acquire(
                    self.workspace.state_dir / "watch.lock",
                    now=now,
                    owner=self.options.host_id,
                    guarding="spec checkout",
                )
            )
            store = stack.enter_context(ResultStore(self.workspace.store_dir))
            journal = stack.enter_context(Journal.open(self.workspace.journal, now=now))
            cache = stack.enter_context(SqliteEnumerationCache(self.workspace.enumeration_cache))
            watcher = asyncio.create_task(self._watch_specs())
            try:
                return await self._loop(store=store, journal=journal, cache=cache)
            finally:
                watcher.cancel()

    async def _loop(
        self, *, store: ResultStore, journal: Journal, cache: SqliteEnumerationCache
    ) -> int:
        trigger = "start"
        failures = 0
        while not self.stop.is_set():
            report = PassReport(number=len(self.passes) + 1, trigger=trigger)
            self.passes.append(report)
            started = self.clock()
            task = asyncio.create_task(
                self._pass(report, store=store, journal=journal, cache=cache),
                name="reconcile-pass",
            )
            try:
                await task
                failures = 0 if report.error is None else failures + 1
            except asyncio.CancelledError:
                report.error = "cut short by a second signal"
            log.info(self._describe(report, seconds=self.clock() - started))
            if self.options.once:
                return report.exit_code
            if self.stop.is_set():
                break
            wait = self.options.interval
            if failures:
                wait = min(wait, wait_seconds(ERROR_BACKOFF, attempt=failures))
            trigger = await self._next_trigger(wait)
        return 0

    async def _pass(
        self,
        report: PassReport,
        *,
        store: ResultStore,
        journal: Journal,
        cache: SqliteEnumerationCache,
    ) -> None:
        try:
            specs = load_specs(self.workspace.spec_dir)
        except UserError as error:
            report.error = f"specs do not validate; waiting for a change:\n{error}"
            report.exit_code = int(error.exit_code)
            return
        planner = Planner(
            git=GitResolver(self.workspace.git_cache, fetch=True),
            cache=cache,
            dependency_root=self.workspace.dependency_trees,
        )
        hosts = worker_hosts(specs, workspace=self.workspace, options=self.host_options)
        applier = Applier(
            specs=specs,
            planner=planner,
            store=store,
            journal=journal,
            hosts=hosts,
            adapters={n: adapter_for(h, cache=cache) for n, h in specs.harnesses.items()},
            clock=self.clock,
            stop=self.stop,
        )
        stalled: dict[str, str] = {}
        try:
            report.summary = await applier.run()
        except ReconcilerError as error:
            report.error = str(error)
            report.exit_code = int(error.exit_code)
            stalled = stalled_branches(specs, error)
        finally:
            for host in hosts:
                await host.close()
        self._remember_heads(planner)
        if self.options.dashboard is not None and not stalled:
            report.dashboard_changed = self._write_dashboard(
                self.options.dashboard, specs=specs, planner=planner, store=store
            )
        if self.options.status:
            report.status_commit = self._write_status(
                specs, planner=planner, store=store, stalled=stalled, report=report
            )

    def _write_status(
        self,
        specs: SpecSet,
        *,
        planner: Planner,
        store: ResultStore,
        stalled: dict[str, str],
        report: PassReport,
    ) -> str | None:
        from reconciler.app.status import spec_revision, write_status

        try:
            # When git could not resolve the specs there is nothing to count, only why.
            desired = DesiredState(slots=()) if stalled else planner.desired(specs)
            plan = planner.plan(desired, store.index.snapshot(desired))
            result = write_status(
                specs=specs,
                desired=desired,
                plan=plan,
                store=store,
                spec_repo=self.workspace.spec_dir,
                host_id=self.options.host_id,
                observed_revision=spec_revision(self.workspace.spec_dir),
                stalled=stalled,
                remote=self.options.status_remote,
                branch=self.options.status_branch,
            )
        except ReconcilerError as error:
            report.error = f"status not written: {error}"
            return None
        return result.commit if result.changed else None

    @staticmethod
    def _write_dashboard(out: Path, *, specs: SpecSet, planner: Planner, store: ResultStore) -> int:
        from reconciler.app.dashboard.generate import write_dashboard  # jinja2, pygal: lazily

        report = write_dashboard(out, specs=specs, desired=planner.desired(specs), store=store)
        return len(report.changed) + len(report.removed)

    def _remember_heads(self, planner: Planner) -> None:
        self._heads = {
            name: branch.commits[0].commit
            for name, branch in planner.resolution.branches.items()
            if branch.commits
        }

    async def _remote_moved(self) -> str | None:
        """The first tracked branch whose remote head differs from the last pass's."""
        try:
            specs = load_specs(self.workspace.spec_dir)
        except UserError:
            return None
        git = GitResolver(self.workspace.git_cache, fetch=True)
        for name, branch in sorted(specs.branches.items()):
            if branch.suspend or name not in self._heads:
                continue
            try:
                (head, *_) = await asyncio.to_thread(
                    git.branch_commits,
                    repo=specs.repos[branch.repo],
                    ref=branch.ref,
                    max_commits=1,
                    asked_by=specs.where(branch),
                )
            except ReconcilerError as error:
                log.warning("polling %s: %s", name, error)
                continue
            if head.commit != self._heads[name]:
                return f"new commits on {name} ({head.commit[:12]})"
        return None

    async def _next_trigger(self, wait: float) -> str:
        deadline = self.clock() + wait
        while not self.stop.is_set():
            if self.spec_changed.is_set():
                self.spec_changed.clear()
                return "spec change"
            remaining = deadline - self.clock()
            if remaining <= 0:
                return "interval"
            nap = min(remaining, self.options.fetch_interval)
            waiters = [
                asyncio.ensure_future(self.stop.wait()),
                asyncio.ensure_future(self.spec_changed.wait()),
            ]
            await asyncio.wait(waiters, timeout=nap, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if self.stop.is_set() or self.spec_changed.is_set():
                continue
            if nap >= self.options.fetch_interval:  # a whole poll period went by
                moved = await self._remote_moved()
                if moved is not None:
                    return moved
        return "stop"

    async def _watch_specs(self) -> None:
        debounce_ms = int(self.options.debounce * 1000)
        spec_dir = self.workspace.spec_dir
        async for _ in watchfiles.awatch(
            spec_dir, debounce=debounce_ms, stop_event=self.stop, recursive=True
        ):
            self.spec_changed.set()

    def _describe(self, report: PassReport, *, seconds: float) -> str:
        head = f"pass {report.number} ({report.trigger}) in {seconds:.1f} s"
        if report.error is not None:
            return f"{head}: failed: {report.error}"
        parts = []
        if report.summary is not None:
            s = report.summary
            parts.append(
                f"{s.batches} batches, {s.recorded} results recorded"
                + (f", {s.infra_failures} infrastructure failures" if s.infra_failures else "")
                + (f", {s.cooling_down} cooling down" if s.cooling_down else "")
            )
        if report.dashboard_changed is not None:
            parts.append(f"dashboard: {report.dashboard_changed} files changed")
        if self.options.status:
            parts.append(
                f"status {report.status_commit[:12]}"
                if report.status_commit
                else "status unchanged"
            )
        return f"{head}: " + "; ".join(parts)


def run_watch(workspace: Workspace, *, options: WatchOptions, hosts: HostOptions) -> int:
    return asyncio.run(Watcher(workspace, options=options, hosts=hosts).run())


__all__ = ["PassReport", "WatchOptions", "Watcher", "run_watch"]
