"""Cutting one unit's subtests into batches that each fill about one VM session.

A batch costs a VM boot (tens of seconds for ktest) plus its subtests, so few large batches waste
the least time booting; but a batch much longer than the rest becomes the tail of a farm run.
The bcachefs CI daemon packed subtests in file order assuming 30 s each, so a batch of twenty
five-second subtests booted a VM for under two minutes of work, and a batch that happened to hold
a half-hour subtest ran for fifty. Here batches are packed from historical per-subtest durations
(a default where none is known) with first-fit decreasing: longest subtest first, each into the
first batch that still has room under the budget. A subtest longer than the budget on its own
gets a batch alone, since splitting a subtest is impossible and pairing it only lengthens it.

Everything is deterministic (ties broken by the unit's own subtest order) so that the same work
always yields the same batches and therefore the same batch ids across reconcile passes; the
scheduler relies on that to keep a queued batch's place when the plan is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.core.identity import canonical_json, sha256_hex

BATCH_ID_VERSION = 1


def batch_id(unit: str, subtests: Sequence[str]) -> str:
    """The id of a batch: sha256 of the canonical JSON of its unit and subtests (in order)."""
    return sha256_hex(
        canonical_json({"v": BATCH_ID_VERSION, "unit": unit, "subtests": list(subtests)})
    )


def pack_batches(
    *,
    unit_subtests: Sequence[str],
    durations: Mapping[str, float],
    default_seconds: float = 30.0,
    budget: float = 600.0,
) -> list[tuple[tuple[str, ...], float]]:
    """Subtests of one unit packed into batches of at most `budget` estimated seconds.

    `durations` maps a subtest to its historical duration; subtests it lacks are estimated at
    `default_seconds`. Returns `(subtests, estimated_seconds)` per batch: batches in the order
    first-fit decreasing opened them (so the batch holding the longest subtest comes first),
    subtests within a batch in the unit's own order (the order a harness would run them).
    """
    if budget <= 0:
        raise ValueError(f"the batch budget must be positive, not {budget}")
    estimates = [max(0.0, durations.get(name, default_seconds)) for name in unit_subtests]
    order = sorted(range(len(estimates)), key=lambda i: (-estimates[i], i))
    smallest = estimates[order[-1]] if order else 0.0

    loads: list[float] = []
    members: list[list[int]] = []
    # Batches that can still take the smallest remaining subtest; scanning only these keeps
    # packing near-linear for units of thousands of short subtests.
    open_batches: list[int] = []
    for index in order:
        estimate = estimates[index]
        placed = False
        if estimate <= budget:
            for position, batch in enumerate(open_batches):
                if loads[batch] + estimate <= budget:
                    loads[batch] += estimate
                    members[batch].append(index)
                    if budget - loads[batch] < smallest:
                        del open_batches[position]
                    placed = True
                    break
        if not placed:
            loads.append(estimate)
            members.append([index])
            if estimate <= budget and budget - estimate >= smallest:
                open_batches.append(len(loads) - 1)

    return [
        (tuple(unit_subtests[i] for i in sorted(indices)), load)
        for indices, load in zip(members, loads, strict=True)
    ]
