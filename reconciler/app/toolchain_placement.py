"""Batches placed only on hosts whose compiler is the one their build identity names.

A build identity names a concrete compiler (core.toolchain). A host that lacks it, or has
another version, must not build it, and must not get the batch back again and again as if it
had failed transiently. So before a round dispatches, each healthy host is asked once per
toolchain the round needs (the answer is kept for the apply, app.worker_setup), and placement
does the rest: a batch carries a tag for its toolchain, a slot the tags of the toolchains its
host has, and the scheduler's own placement (arch and tags) sends each batch where it can be
built. Batches no host can build are held back and reported with what each host said; they
are never built with another compiler. A host that cannot be asked now (unreachable, or
cooling down) keeps every tag: the ordinary infrastructure path deals with it, and its build
checks the compiler before it starts anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.app.host_toolchain import toolchain_of
from reconciler.app.worker_setup import HostWorkspace
from reconciler.core.identity import canonical_json, sha256_hex
from reconciler.core.toolchain import toolchain_label
from reconciler.model.errors import InfrastructureError
from reconciler.model.execution import Batch, WorkerSlot

TAG_PREFIX = "toolchain:"
"""Placement tags of toolchains; worker tags users write never need this prefix."""


def toolchain_tag(toolchain: Mapping[str, str]) -> str:
    return TAG_PREFIX + sha256_hex(canonical_json(dict(toolchain)))[:16]


@dataclass(frozen=True)
class HeldToolchain:
    """A toolchain no host can build with, and the batches held back for it."""

    toolchain: Mapping[str, str]
    batches: int
    problems: tuple[str, ...]
    """What each host said, one line per host."""

    @property
    def message(self) -> str:
        return (
            f"no host can build toolchain {self.toolchain['name']!r} "
            f"({toolchain_label(self.toolchain)}): {'; '.join(self.problems)}; "
            f"{self.batches} batch{'es' if self.batches != 1 else ''} held back"
        )


@dataclass(frozen=True)
class Placed:
    batches: list[Batch]
    """The round's batches that some host can build, each tagged with its toolchain."""
    slots: list[WorkerSlot]
    """Every slot, tagged with the toolchains its host has."""
    held: tuple[HeldToolchain, ...]


async def place_by_toolchain(
    batches: Sequence[Batch],
    *,
    slots: Sequence[WorkerSlot],
    workspaces: Mapping[str, HostWorkspace],
) -> Placed:
    """Tag batches and slots so each batch goes only to hosts that have its compiler."""
    needed: dict[str, Mapping[str, str]] = {}
    for batch in batches:
        found = toolchain_of(batch.build)
        if found is not None:
            needed.setdefault(toolchain_tag(found[0]), found[0])
    if not needed:
        return Placed(list(batches), list(slots), ())
    hosts = sorted({slot.host for slot in slots})
    pairs = [(host, tag) for host in hosts for tag in needed]

    async def ask(host: str, tag: str) -> str | None:
        workspace = workspaces[host]
        if not workspace.host.healthy:
            return None
        try:
            return (await workspace.compiler(needed[tag])).problem
        except InfrastructureError:
            return None  # unreachable now: left to the retry and health rules

    answers = dict(zip(pairs, await asyncio.gather(*(ask(*pair) for pair in pairs)), strict=True))
    capable = {host: {tag for tag in needed if answers[host, tag] is None} for host in hosts}
    placed: list[Batch] = []
    held_counts: dict[str, int] = {}
    for batch in batches:
        found = toolchain_of(batch.build)
        if found is None:
            placed.append(batch)
            continue
        tag = toolchain_tag(found[0])
        if any(tag in tags for tags in capable.values()):
            placed.append(
                dataclasses.replace(batch, worker_tags=batch.worker_tags | frozenset({tag}))
            )
        else:
            held_counts[tag] = held_counts.get(tag, 0) + 1
    held = tuple(
        HeldToolchain(
            toolchain=needed[tag],
            batches=count,
            problems=tuple(str(answers[host, tag]) for host in hosts),
        )
        for tag, count in sorted(held_counts.items())
    )
    tagged_slots = [
        dataclasses.replace(slot, tags=slot.tags | frozenset(capable[slot.host])) for slot in slots
    ]
    return Placed(placed, tagged_slots, held)
