"""`reconciler workers`: each host's slots, arch, tags, health, and the batches it is running.

Health is probed now (one `true` over the same transport batches use), so the answer is what a
dispatch would meet; running batches come from the journal's leases, which any apply holding
the store keeps current.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.executors.base import WorkerHost
from reconciler.adapters.journal import read_leases
from reconciler.app.applying import HostOptions, worker_hosts
from reconciler.app.planning import Workspace
from reconciler.model.errors import ReconcilerError
from reconciler.model.specset import SpecSet

PROBE_SECONDS = 15.0


@dataclass(frozen=True)
class WorkerRow:
    host: str
    slots: int
    arch: str
    tags: tuple[str, ...]
    healthy: bool
    detail: str
    running: int

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "slots": self.slots,
            "arch": self.arch,
            "tags": list(self.tags),
            "healthy": self.healthy,
            "detail": self.detail,
            "running_batches": self.running,
        }


async def _probe(host: WorkerHost) -> tuple[bool, str]:
    try:
        result = await host.run("true", timeout=PROBE_SECONDS)
    except ReconcilerError as error:
        return False, error.message
    finally:
        await host.close()
    if result.exit_status == 0:
        return True, "ok"
    return False, "timed out" if result.timed_out else f"`true` exited {result.exit_status}"


def list_workers(workspace: Workspace, *, specs: SpecSet, options: HostOptions) -> list[WorkerRow]:
    hosts = worker_hosts(specs, workspace=workspace, options=options)

    async def probe_all() -> list[tuple[bool, str]]:
        return list(await asyncio.gather(*(_probe(host) for host in hosts)))

    health = asyncio.run(probe_all())
    running = Counter(lease.worker.split("/", 1)[0] for lease in read_leases(workspace.journal))
    return [
        WorkerRow(
            host=host.name,
            slots=host.slots,
            arch=host.arch,
            tags=tuple(sorted(host.tags)),
            healthy=healthy,
            detail=detail,
            running=running.get(host.name, 0),
        )
        for host, (healthy, detail) in zip(hosts, health, strict=True)
    ]


def render_workers(rows: list[WorkerRow]) -> str:
    header = f"{'HOST':<28} {'SLOTS':>5} {'ARCH':<8} {'RUNNING':>7}  {'HEALTH':<9} TAGS"
    lines = [header]
    for row in rows:
        health = "ok" if row.healthy else "unhealthy"
        lines.append(
            f"{row.host:<28} {row.slots:>5} {row.arch:<8} {row.running:>7}  {health:<9} "
            f"{','.join(row.tags) or '-'}" + ("" if row.healthy else f"  ({row.detail})")
        )
    return "\n".join(lines) + "\n"
