"""`reconciler apply`: run the plan until the store holds what the specs ask for.

One apply is a few *rounds*. A round plans against the store, cuts the plan into batches, and
lets the scheduler hand them to worker slots until it is idle. Subtests a round could not reach
(a dead VM, a dropped host) are simply still missing in the next round's plan, so the next round
runs them in fresh batches. Rounds end when nothing is left to dispatch: everything stored,
blocked by a failed build, or cooling down; a subtest never reached in `UNREACHED_LIMIT`
batches (counted in the journal, across applies) is recorded as `error` and cools down too.

Crash safety: every dispatched batch holds a lease in the journal, and results reach the store
before the lease is released. The journal's owner lock proves that leases found at start-up
belong to a dead apply: their result files are re-indexed (a kill between file write and index
update must not make us run a subtest twice) and their work is simply planned again.

Infrastructure failures (a host that drops, a fetch that fails) put the batch back in the queue
after an exponential backoff, up to `MAX_INFRA_ATTEMPTS`; then its unit cools down and is retried
on a later reconcile. They are never recorded as test failures.

A host whose compiler is not the one a build identity names is not a transient failure: each
round places batches only on hosts that have their compiler (app.toolchain_placement), holds
back and reports those no host can build, and a build refused anyway (a host changed mid-run)
leaves the round without a backoff, to be placed again in the next.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import tenacity

from reconciler.adapters.executors.base import WorkerHost
from reconciler.adapters.harness.base import HarnessAdapter
from reconciler.adapters.journal import Journal
from reconciler.adapters.store.files import ResultStore
from reconciler.app.backoff import wait_seconds
from reconciler.app.batch_runner import UNREACHED_LIMIT, BatchOutcome, BatchRunner
from reconciler.app.host_toolchain import ToolchainRefused
from reconciler.app.image_reuse import copy_planned
from reconciler.app.planning import IncrementalSnapshots, Planner
from reconciler.app.toolchain_placement import HeldToolchain, place_by_toolchain
from reconciler.app.work import batches_for
from reconciler.app.worker_setup import HostWorkspace
from reconciler.core.identity import ResultIdentities
from reconciler.core.scheduler import Scheduler
from reconciler.model.errors import InfrastructureError
from reconciler.model.execution import Assignment, Batch, WorkerSlot
from reconciler.model.plan import Plan
from reconciler.model.specset import SpecSet

log = logging.getLogger(__name__)

MAX_INFRA_ATTEMPTS = 4
COOLDOWN_SECONDS = 1800.0
MAX_ROUNDS = 6
BACKOFF = tenacity.wait_exponential(multiplier=2, min=2, max=120)
"""Seconds before an infrastructure failure is retried: 2, 4, 8, ... at most 120."""


@dataclass
class ApplySummary:
    rounds: int = 0
    batches: int = 0
    recorded: int = 0
    blocked_batches: int = 0
    infra_failures: int = 0
    repaired: int = 0
    orphaned: int = 0
    cooling_down: int = 0
    reused_same_image: int = 0
    """Results copied from a build with a byte-identical boot image instead of being run."""
    held_by_toolchain: dict[str, HeldToolchain] = field(default_factory=dict)
    """Toolchains no host could build with (by name), as the last round found them."""
    toolchain_refusals: int = 0
    """Builds a host refused at start because its compiler was not the identity's."""
    last_plan: Plan | None = None


@dataclass
class ApplyEvents:
    """Hooks for progress displays; all optional."""

    on_plan: Callable[[Plan, int], None] = lambda plan, batches: None
    on_batch_done: Callable[[Batch, int], None] = lambda batch, recorded: None


def batch_payload(batch: Batch) -> str:
    """What the journal keeps of a leased batch: enough to find its results after a crash."""
    return json.dumps(
        {"unit": batch.unit, "unit_preimage": batch.unit_preimage, "subtests": batch.subtests},
        sort_keys=True,
    )


def result_ids_of_payload(payload: str) -> list[str]:
    data = json.loads(payload)
    identities = ResultIdentities(data["unit_preimage"])
    return [identities.of(subtest) for subtest in data["subtests"]]


@dataclass
class Applier:
    specs: SpecSet
    planner: Planner
    store: ResultStore
    journal: Journal
    hosts: Sequence[WorkerHost]
    adapters: dict[str, HarnessAdapter]
    clock: Callable[[], float] = time.time
    events: ApplyEvents = field(default_factory=ApplyEvents)
    summary: ApplySummary = field(default_factory=ApplySummary)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to stop dispatching: running batches finish, nothing new starts (SIGTERM)."""

    def __post_init__(self) -> None:
        self.workspaces = {
            host.name: HostWorkspace(host=host, store=self.store, clock=self.clock)
            for host in self.hosts
        }
        self.runners = {
            host.name: BatchRunner(
                workspace=self.workspaces[host.name],
                store=self.store,
                adapters=self.adapters,
                clock=self.clock,
                unreached_counts=self._count_unreached,
            )
            for host in self.hosts
        }
        self.hosts_by_name = {host.name: host for host in self.hosts}
        self.slots = [
            WorkerSlot(host=host.name, slot=n, arch=host.arch, tags=host.tags)
            for host in self.hosts
            for n in range(host.slots)
        ]
        self.snapshots = IncrementalSnapshots(self.store.index)

    def _count_unreached(self, unit: str, subtest: str) -> int:
        """Batches that ended without reaching this subtest, across applies (the journal).

        At the limit the runner records it as `error`; its unit then cools down, so the error
        is retried by a later reconcile rather than by the next round.
        """
        now = self.clock()
        count = self.journal.record_failure(
            f"unreached:{unit}:{subtest}", now=now, message="not reached"
        )
        if count >= UNREACHED_LIMIT:
            self.journal.record_failure(unit, now=now, message=f"{subtest}: never reached")
        return count

    def recover(self) -> None:
        """Leases a dead apply left behind: re-index their finished results, forget them."""
        orphans = self.journal.orphaned()
        ids = [i for lease in orphans for i in result_ids_of_payload(lease.payload)]
        self.summary.orphaned = len(orphans)
        self.summary.repaired = self.store.repair_results(ids) if ids else 0
        self.journal.forget([lease.batch_id for lease in orphans])

    def plan_round(self) -> tuple[Plan, list[Batch]]:
        desired = self.planner.desired(self.specs)
        plan = self.planner.plan(desired, self.snapshots.snapshot(desired))
        self.summary.reused_same_image += copy_planned(self.store, plan=plan, desired=desired)
        now = self.clock()
        batches = []
        work = batches_for(
            plan=plan,
            desired=desired,
            resolution=self.planner.resolution,
            specs=self.specs,
            store=self.store,
        )
        for batch in work:
            if self.journal.cooling_down(batch.unit, now=now, cooldown_seconds=COOLDOWN_SECONDS):
                self.summary.cooling_down += 1
                continue
            batches.append(batch)
        self.summary.last_plan = plan
        return plan, batches

    async def run(self) -> ApplySummary:
        self.recover()
        for _ in range(MAX_ROUNDS):
            if self.stop.is_set():
                break
            plan, batches = self.plan_round()
            placed = await place_by_toolchain(batches, slots=self.slots, workspaces=self.workspaces)
            for held in placed.held:
                log.warning("%s", held.message)
            self.summary.held_by_toolchain = {held.toolchain["name"]: held for held in placed.held}
            self.events.on_plan(plan, len(placed.batches))
            if not placed.batches:
                break
            self.summary.rounds += 1
            await self._drain(placed.batches, slots=placed.slots)
        return self.summary

    async def _drain(self, batches: list[Batch], *, slots: Sequence[WorkerSlot]) -> None:
        scheduler = Scheduler()
        scheduler.replace_work(batches, now=self.clock())
        free = list(slots)
        running: dict[asyncio.Task[BatchOutcome], Assignment] = {}
        delayed: set[asyncio.Task[None]] = set()
        heartbeat = asyncio.create_task(self._heartbeat(running))
        try:
            while True:
                usable = [slot for slot in free if self.hosts_by_name[slot.host].healthy]
                if self.stop.is_set():
                    usable = []  # stopping: let running batches finish, start nothing new
                for assignment in scheduler.dispatch(free_slots=usable, now=self.clock()):
                    free.remove(assignment.slot)
                    self.journal.lease(
                        assignment.batch.id,
                        payload=batch_payload(assignment.batch),
                        worker=assignment.slot.name,
                        now=self.clock(),
                    )
                    running[asyncio.create_task(self._run(assignment))] = assignment
                if not running and (not delayed or self.stop.is_set()):
                    break
                # Wake on the stop signal too, but only until it is set: once stopping, wait for
                # running batches alone.
                waiters: list[asyncio.Future[Any]] = [*running, *delayed]
                stopping = None
                if not self.stop.is_set():
                    stopping = asyncio.ensure_future(self.stop.wait())
                    waiters.append(stopping)
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if stopping is not None:
                    stopping.cancel()
                    done.discard(stopping)
                for finished in done:
                    if finished in delayed:
                        delayed.discard(cast(asyncio.Task[None], finished))
                        continue
                    task = cast(asyncio.Task[BatchOutcome], finished)
                    assignment = running.pop(task)
                    free.append(assignment.slot)
                    retry = self._finish(task, assignment, scheduler)
                    if retry is not None:
                        delayed.add(asyncio.create_task(retry))
        finally:
            heartbeat.cancel()
            for pending in [*running, *delayed]:
                pending.cancel()
            # Batches cut short (a second signal, an error elsewhere): their finished subtests
            # are stored; releasing the lease lets the next pass plan the rest at once.
            for assignment in running.values():
                self.journal.release(assignment.batch.id)

    async def _run(self, assignment: Assignment) -> BatchOutcome:
        outcome = await self.runners[assignment.slot.host].run(assignment.batch)
        if outcome.blocked:
            self.summary.blocked_batches += 1
        return outcome

    def _finish(
        self, task: asyncio.Task[BatchOutcome], assignment: Assignment, scheduler: Scheduler
    ) -> Coroutine[Any, Any, None] | None:
        """Book a finished batch; for an infrastructure failure, the delayed requeue to run."""
        batch = assignment.batch
        error = task.exception()
        now = self.clock()
        if error is None:
            outcome = task.result()
            self.journal.release(batch.id)
            if not outcome.unreached and not outcome.given_up:
                self.journal.clear_failures(batch.unit)
            scheduler.complete(batch.id, now=now)
            self.summary.batches += 1
            self.summary.recorded += len(outcome.recorded)
            self.summary.reused_same_image += len(outcome.reused)
            self.events.on_batch_done(batch, len(outcome.recorded) + len(outcome.reused))
            return None
        # Results written before the failure stay; the lease goes, the rest is planned again.
        self.journal.release(batch.id)
        if isinstance(error, ToolchainRefused):
            # Not transient: no backoff on this host. The next round asks it again and places
            # the batch where the compiler is the identity's.
            self.summary.toolchain_refusals += 1
            self.workspaces[assignment.slot.host].forget_compiler(error.toolchain)
            log.warning("%s: %s", assignment.slot.name, error)
            scheduler.complete(batch.id, now=now)
            return None
        if not isinstance(error, InfrastructureError):
            scheduler.complete(batch.id, now=now)
            raise error
        self.summary.infra_failures += 1
        failures = self.journal.record_failure(batch.unit, now=now, message=str(error))
        log.warning("%s: %s (attempt %d)", assignment.slot.name, error, failures)
        if failures >= MAX_INFRA_ATTEMPTS:
            scheduler.complete(batch.id, now=now)  # cools down; a later reconcile retries
            return None
        delay = wait_seconds(BACKOFF, attempt=failures)

        async def requeue_later() -> None:
            await asyncio.sleep(delay)
            scheduler.requeue(batch.id, now=self.clock())

        return requeue_later()

    async def _heartbeat(self, running: dict[asyncio.Task[BatchOutcome], Assignment]) -> None:
        while True:
            await asyncio.sleep(self.journal.lease_seconds / 3)
            now = self.clock()
            for assignment in list(running.values()):
                self.journal.renew(assignment.batch.id, now=now)
