"""Apply offers work only to healthy hosts (at the WorkerHost seam: a host already marked
unhealthy is a state a real host reaches only after minutes of failures)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.harness.registry import adapter_for
from reconciler.adapters.journal import Journal
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.apply import Applier
from reconciler.app.planning import Planner
from reconciler.model.errors import WorkerUnreachable
from reconciler.model.execution import CommandResult


class UnhealthyHost:
    """A WorkerHost cooling down after repeated failures; any use of it is a test failure."""

    name = "sick"
    arch = "x86_64"
    tags: frozenset[str] = frozenset()
    slots = 4
    healthy = False
    workdir = "/nonexistent"
    runs = 0

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: object = None,
    ) -> CommandResult:
        self.runs += 1
        raise WorkerUnreachable("sick: down")

    async def read_file(self, path: str) -> bytes | None:
        self.runs += 1
        raise WorkerUnreachable("sick: down")

    async def close(self) -> None:
        return None


def test_an_unhealthy_host_gets_no_batch(quickstart: Path, tmp_path: Path) -> None:
    specs = load_specs(quickstart / "specs")
    sick = UnhealthyHost()
    cache = MemoryEnumerationCache()
    with (
        ResultStore(tmp_path / "store") as store,
        Journal.open(tmp_path / "journal.sqlite", now=time.time()) as journal,
    ):
        applier = Applier(
            specs=specs,
            planner=Planner(git=GitResolver(tmp_path / "git"), cache=cache),
            store=store,
            journal=journal,
            hosts=[LocalHost(workdir=tmp_path / "work", slots=2), sick],
            adapters={n: adapter_for(h, cache=cache) for n, h in specs.harnesses.items()},
        )
        summary = asyncio.run(applier.run())
    assert sick.runs == 0
    assert (summary.recorded, summary.infra_failures) == (104, 0)
