"""Which queued batch runs next, on which slot: a pure scheduler with time passed in.

The plan is recomputed on every reconcile pass; the scheduler holds the batches it yields and
hands them to worker slots. It reads no clock and does no I/O: every event carries `now`, so the
farm simulation (bench/farm_sim.py) and tests drive the real thing with invented time.

Order. Age-major: the batch whose commit is newest (`committed_at`) goes first, across all
branches, because a developer who just pushed wants those results; then higher `priority`; then
longer estimated batches first (longest-processing-time-first: long batches started early do not
become the tail of a run); then unit and batch id, so equal inputs give one order.

Two rules keep old work from waiting forever behind a stream of new commits:
- Baseline reserve. While any baseline batch is queued, baseline work is entitled to
  `baseline_share` of the slots (a free slot takes the best baseline batch it accepts while
  running baseline batches are fewer than `ceil(baseline_share * slots)`) and of the window
  (branch batches leave `floor(baseline_share * window)` subtests of it, less what running
  baseline batches hold, for baseline batches). A baseline commit is months old, so age-major
  order alone would never reach it.
- Starvation boost. A batch queued for longer than `starvation_seconds` (its wait survives a
  requeue) goes first, longest-waiting first, as long as boosted batches hold fewer than
  `ceil(starvation_share * slots)` slots. The cap is deliberate: when the backlog is deeper than
  `starvation_seconds`, an uncapped boost turns every old batch into a boosted one and the farm
  into a FIFO, testing yesterday's commits while today's wait; capped, old work still drains
  at a guaranteed rate and new commits keep most of the farm.
`slots` is the slots the scheduler can see in one `dispatch` call: running batches plus the free
slots offered.

Window. At most `window` subtests are dispatched and not yet completed (the bcachefs daemon's
2,000-job window, kept for dispatch only: the plan itself is the full matrix). A batch larger
than the whole window still runs, alone, once nothing else is running. When the next batch in
order does not fit the room left, the first of the following `BACKFILL_LOOKAHEAD` batches that
does fit runs instead (backfill), so slots do not idle while a large batch waits for room; the
passed-over batch keeps its place and, once it has waited `starvation_seconds`, is boosted, and
a boosted batch that does not fit holds the window until it drains, so it cannot be postponed
forever.

Placement. A slot accepts a batch by arch and worker tags (`WorkerSlot.accepts`). The queue
(`core.batch_queue`) keeps one class per placement (arch, tags), each with heaps for order,
baseline order and waiting time, so a dispatch looks at the head of a few heaps instead of
re-sorting the queue. A batch no slot accepts stays queued; `unplaceable` lists them so the app
can warn. Build affinity: the scheduler remembers the hosts each build ran on and gives a batch
a free slot on such a host when one accepts it, so the host's build (and its cache) is reused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler.core.batch_queue import (
    BatchQueue,
    Entry,
    Placement,
    PlacementClass,
    accepts,
    order_key,
    placement,
)
from reconciler.model.execution import Assignment, Batch, WorkerSlot

BACKFILL_LOOKAHEAD = 256
"""How many batches past a head that does not fit the window are looked at for one that does
(shared among the placement classes looked at, at least 16 each): bounds the cost of a dispatch
while the window is full."""


@dataclass(eq=False)
class _Running:
    assignment: Assignment
    entry: Entry
    boosted: bool


class Scheduler:
    """Queued and running batches; see the module docstring for the rules.

    `now` on `complete` and `requeue` keeps every event's signature alike for the caller's
    journal; the order depends only on when a batch was first queued, never on those times.
    """

    def __init__(
        self,
        *,
        window: int = 2000,
        baseline_share: float = 0.2,
        starvation_seconds: float = 3600.0,
        starvation_share: float = 0.25,
    ) -> None:
        if window < 1:
            raise ValueError(f"the window must hold at least one subtest, not {window}")
        for name, share in (
            ("baseline_share", baseline_share),
            ("starvation_share", starvation_share),
        ):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {share}")
        self.window = window
        self.baseline_share = baseline_share
        self.starvation_seconds = starvation_seconds
        self.starvation_share = starvation_share
        self._queue = BatchQueue()
        self._wanted: frozenset[str] = frozenset()
        self._running: dict[str, _Running] = {}
        self._running_subtests = 0
        self._running_baselines = 0
        self._running_baseline_subtests = 0
        self._running_boosted = 0
        self._build_hosts: dict[str, set[str]] = {}

    # -- the work --------------------------------------------------------------------------

    def replace_work(self, batches: Iterable[Batch], *, now: float) -> None:
        """Install the batches of the latest plan.

        Queued batches that are in it keep their waiting time (and their place, unless their
        ordering inputs changed); queued batches that are not are dropped (their commit fell out
        of `max_commits`, or a branch moved); running batches are left to finish.
        """
        wanted: dict[str, Batch] = {}
        for batch in batches:
            wanted.setdefault(batch.id, batch)
        for gone in [e.batch.id for e in self._queue if e.batch.id not in wanted]:
            self._queue.remove(gone)
        for batch_id, batch in wanted.items():
            if batch_id in self._running:
                continue
            entry = self._queue.get(batch_id)
            if entry is None:
                self._queue.push(batch, queued_since=now)
            elif order_key(batch) != entry.key or placement(batch) != placement(entry.batch):
                self._queue.remove(batch_id)
                self._queue.push(batch, queued_since=entry.queued_since)
        self._wanted = frozenset(wanted)
        builds = {e.batch.build.build for e in self._queue}
        builds.update(r.entry.batch.build.build for r in self._running.values())
        self._build_hosts = {b: h for b, h in self._build_hosts.items() if b in builds}
        self._queue.compact_if_stale()

    def complete(self, batch_id: str, *, now: float) -> None:
        """A batch finished (its results are stored): its slot and window share are free.

        Idempotent. A completion that arrives after the batch was requeued (a lease given up
        too early) also takes it off the queue: the work is done.
        """
        if batch_id in self._running:
            self._stop(batch_id)
        elif batch_id in self._queue:
            self._queue.remove(batch_id)

    def requeue(self, batch_id: str, *, now: float) -> None:
        """Put a running batch back (infrastructure failure, lost lease), keeping its waiting
        time so it does not lose its place to work queued after it. Dropped instead if the
        latest plan no longer wants it. Ignored for a batch that is not running."""
        if batch_id not in self._running:
            return
        entry = self._stop(batch_id).entry
        if batch_id in self._wanted:
            self._queue.push(entry.batch, queued_since=entry.queued_since)

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self, *, free_slots: Sequence[WorkerSlot], now: float) -> list[Assignment]:
        """Hand queued batches to free slots, best batch first, within the window.

        The caller owns the slots: a slot it offers is free, even one whose last batch is still
        counted as running here (e.g. waiting out a backoff before its `requeue`).
        """
        free: dict[Placement, list[WorkerSlot]] = {}
        for slot in free_slots:
            free.setdefault((slot.arch, slot.tags), []).append(slot)
        capacity = len(self._running) + len(free_slots)
        assignments: list[Assignment] = []
        while free:
            picked = self._pick(self._queue.classes_for(free), capacity=capacity, now=now)
            if picked is None:
                break
            entry, boosted = picked
            slot = self._slot_for(entry.batch, free)
            assignment = Assignment(entry.batch, slot)
            self._start(entry, assignment, boosted=boosted)
            assignments.append(assignment)
        return assignments

    def _pick(
        self, classes: Sequence[PlacementClass], *, capacity: int, now: float
    ) -> tuple[Entry, bool] | None:
        """The next batch for some free slot, and whether it runs boosted; None to wait."""
        room = self.window - self._running_subtests
        idle = not self._running

        def fits(entry: Entry, room: int) -> bool:
            return idle or len(entry.batch.subtests) <= room

        if self._running_boosted < math.ceil(self.starvation_share * capacity):
            oldest = self._queue.longest_waiting(classes)
            if oldest is not None and oldest.queued_since <= now - self.starvation_seconds:
                # Not fitting, it holds the window until enough drains: it cannot be passed over.
                return (oldest, True) if fits(oldest, room) else None

        baseline = self._queue.best(classes, baseline=True)
        quota = math.ceil(self.baseline_share * capacity)
        if baseline is not None and self._running_baselines < quota and fits(baseline, room):
            return baseline, False
        best = self._queue.best(classes)
        if best is None:
            return None
        reserve = 0
        if self._queue.baselines:
            held = math.floor(self.baseline_share * self.window)
            reserve = max(0, held - self._running_baseline_subtests)

        def fits_share(entry: Entry) -> bool:
            return fits(entry, room if entry.is_baseline else room - reserve)

        if fits_share(best):
            return best, False
        if baseline is not None and fits(baseline, room):
            return baseline, False
        if room <= 0:
            return None
        lookahead = max(16, BACKFILL_LOOKAHEAD // max(1, len(classes)))
        found = self._queue.first_fitting(classes, fits=fits_share, lookahead=lookahead)
        return None if found is None else (found, False)

    def _slot_for(self, batch: Batch, free: dict[Placement, list[WorkerSlot]]) -> WorkerSlot:
        """A free slot that accepts `batch`, on a host that already built it when there is one."""
        hosts = self._build_hosts.get(batch.build.build)
        needs = placement(batch)
        fallback: tuple[Placement, int] | None = None
        for slot_placement, slots in free.items():
            if not accepts(slot_placement, needs):
                continue
            if not hosts:
                fallback = (slot_placement, 0)
                break
            for index, slot in enumerate(slots):
                if slot.host in hosts:
                    return self._take(free, slot_placement, index)
                if fallback is None:
                    fallback = (slot_placement, index)
        # _pick only considers classes some free slot accepts, so a slot was found.
        assert fallback is not None
        return self._take(free, *fallback)

    @staticmethod
    def _take(free: dict[Placement, list[WorkerSlot]], where: Placement, index: int) -> WorkerSlot:
        slots = free[where]
        slot = slots.pop(index)
        if not slots:
            del free[where]
        return slot

    # -- views -----------------------------------------------------------------------------

    def queued(self) -> list[Batch]:
        """Queued batches in base order (before the baseline and starvation rules)."""
        return [e.batch for e in sorted(self._queue, key=lambda e: e.key)]

    def in_flight(self) -> list[Assignment]:
        return [r.assignment for r in self._running.values()]

    @property
    def in_flight_subtests(self) -> int:
        return self._running_subtests

    def is_idle(self) -> bool:
        return not self._queue and not self._running

    def unplaceable(self, slots: Iterable[WorkerSlot]) -> list[Batch]:
        """Queued batches none of `slots` accepts (wrong arch, missing tags), in base order."""
        offered = {(slot.arch, slot.tags) for slot in slots}
        return [b for b in self.queued() if not any(accepts(s, placement(b)) for s in offered)]

    # -- running batches -------------------------------------------------------------------

    def _start(self, entry: Entry, assignment: Assignment, *, boosted: bool) -> None:
        batch = entry.batch
        self._queue.remove(batch.id)
        self._running[batch.id] = _Running(assignment, entry, boosted)
        self._running_subtests += len(batch.subtests)
        if entry.is_baseline:
            self._running_baselines += 1
            self._running_baseline_subtests += len(batch.subtests)
        if boosted:
            self._running_boosted += 1
        self._build_hosts.setdefault(batch.build.build, set()).add(assignment.slot.host)

    def _stop(self, batch_id: str) -> _Running:
        running = self._running.pop(batch_id)
        batch = running.entry.batch
        self._running_subtests -= len(batch.subtests)
        if running.entry.is_baseline:
            self._running_baselines -= 1
            self._running_baseline_subtests -= len(batch.subtests)
        if running.boosted:
            self._running_boosted -= 1
        return running
