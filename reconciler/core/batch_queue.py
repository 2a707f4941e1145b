"""The scheduler's queue: batches waiting for a slot, indexed so the next one is cheap to find.

A farm-scale queue holds tens of thousands of batches and is asked for its best batch on every
completion, so it is never re-sorted. Batches are kept in one class per placement (arch, worker
tags), because a slot can only take batches of the classes it accepts; each class keeps three
heaps: by scheduling order, baselines by scheduling order, and by time queued. Removing a batch
only forgets its entry; heap items whose entry is gone (or was pushed again, with a new version)
are skipped when they surface, and the heaps are rebuilt once stale items dominate.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from reconciler.model.desired import OriginKind
from reconciler.model.execution import Batch

OrderKey = tuple[int, int, float, str, str]
Placement = tuple[str, frozenset[str]]
"""(arch, worker tags) a batch needs, or (arch, tags) a slot has."""


def order_key(batch: Batch) -> OrderKey:
    """Newest commit first, then higher priority, then longest estimate, then stable ids."""
    return (-batch.committed_at, -batch.priority, -batch.estimated_seconds, batch.unit, batch.id)


def placement(batch: Batch) -> Placement:
    return (batch.arch, batch.worker_tags)


def accepts(slot: Placement, batch: Placement) -> bool:
    """The rule of `WorkerSlot.accepts`, on placement classes."""
    return slot[0] == batch[0] and batch[1] <= slot[1]


@dataclass(eq=False)
class Entry:
    """A queued batch. `version` is new on every push so stale heap items can be told apart."""

    batch: Batch
    key: OrderKey
    queued_since: float
    version: int

    @property
    def is_baseline(self) -> bool:
        return self.batch.origin.kind is OriginKind.BASELINE


_OrderItem = tuple[OrderKey, int, Entry]
_WaitItem = tuple[float, OrderKey, int, Entry]


@dataclass(eq=False)
class PlacementClass:
    """Heaps of the queued batches of one placement."""

    by_order: list[_OrderItem] = field(default_factory=list)
    baselines: list[_OrderItem] = field(default_factory=list)
    by_wait: list[_WaitItem] = field(default_factory=list)


class BatchQueue:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._classes: dict[Placement, PlacementClass] = {}
        self._accepted: dict[Placement, tuple[PlacementClass, ...]] = {}
        self._heap_items = 0
        self._versions = 0
        self.baselines = 0
        """How many queued batches come from a baseline."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def get(self, batch_id: str) -> Entry | None:
        return self._entries.get(batch_id)

    def push(self, batch: Batch, *, queued_since: float) -> Entry:
        self._versions += 1
        entry = Entry(batch, order_key(batch), queued_since, self._versions)
        self._entries[batch.id] = entry
        self._index(entry)
        if entry.is_baseline:
            self.baselines += 1
        return entry

    def remove(self, batch_id: str) -> Entry:
        entry = self._entries.pop(batch_id)
        if entry.is_baseline:
            self.baselines -= 1
        return entry

    def classes_for(self, slots: Iterable[Placement]) -> list[PlacementClass]:
        """The classes any of these slot placements accepts (cached per slot placement)."""
        seen: dict[int, PlacementClass] = {}
        for slot in slots:
            accepted = self._accepted.get(slot)
            if accepted is None:
                accepted = tuple(c for p, c in self._classes.items() if accepts(slot, p))
                self._accepted[slot] = accepted
            for cls in accepted:
                seen[id(cls)] = cls
        return list(seen.values())

    def best(self, classes: Iterable[PlacementClass], *, baseline: bool = False) -> Entry | None:
        """The first batch in order among `classes` (among their baseline batches if asked)."""
        best: _OrderItem | None = None
        for cls in classes:
            heap = cls.baselines if baseline else cls.by_order
            while heap and not self._live(heap[0][2], heap[0][1]):
                heapq.heappop(heap)
                self._heap_items -= 1
            if heap and (best is None or heap[0][:2] < best[:2]):
                best = heap[0]
        return None if best is None else best[2]

    def longest_waiting(self, classes: Iterable[PlacementClass]) -> Entry | None:
        oldest: _WaitItem | None = None
        for cls in classes:
            heap = cls.by_wait
            while heap and not self._live(heap[0][3], heap[0][2]):
                heapq.heappop(heap)
                self._heap_items -= 1
            if heap and (oldest is None or heap[0][:2] < oldest[:2]):
                oldest = heap[0]
        return None if oldest is None else oldest[3]

    def first_fitting(
        self,
        classes: Iterable[PlacementClass],
        *,
        fits: Callable[[Entry], bool],
        lookahead: int,
    ) -> Entry | None:
        """The first batch in order, among the next `lookahead` of each class, that `fits`."""
        popped: list[tuple[PlacementClass, _OrderItem]] = []
        found: _OrderItem | None = None
        for cls in classes:
            heap = cls.by_order
            looked = 0
            while heap and looked < lookahead:
                item = heapq.heappop(heap)
                if not self._live(item[2], item[1]):
                    self._heap_items -= 1
                    continue
                popped.append((cls, item))
                looked += 1
                if fits(item[2]):
                    if found is None or item[:2] < found[:2]:
                        found = item
                    break
        for cls, item in popped:
            heapq.heappush(cls.by_order, item)
        return None if found is None else found[2]

    def compact_if_stale(self) -> None:
        """Rebuild the heaps from live entries once stale items dominate (each live entry has
        two or three items)."""
        if self._heap_items <= 6 * len(self._entries) + 4096:
            return
        self._classes = {}
        self._accepted.clear()
        self._heap_items = 0
        for entry in self._entries.values():
            self._index(entry)

    def _index(self, entry: Entry) -> None:
        where = placement(entry.batch)
        cls = self._classes.get(where)
        if cls is None:
            cls = self._classes[where] = PlacementClass()
            self._accepted.clear()
        heapq.heappush(cls.by_order, (entry.key, entry.version, entry))
        heapq.heappush(cls.by_wait, (entry.queued_since, entry.key, entry.version, entry))
        self._heap_items += 2
        if entry.is_baseline:
            heapq.heappush(cls.baselines, (entry.key, entry.version, entry))
            self._heap_items += 1

    def _live(self, entry: Entry, version: int) -> bool:
        return entry.version == version and self._entries.get(entry.batch.id) is entry
