"""`reconciler workers`: each host's slots, arch, tags, health, the toolchains of the spec set
it can build with, and the batches it is running.

Health is probed now (one `true` over the same transport batches use), so the answer is what a
dispatch would meet. So are toolchains: each one the specs use is resolved on this host, as
planning does, and each healthy host is asked for its compiler as a build would be
(app.host_toolchain), so "cannot build" here is exactly a refusal at dispatch. Running batches
come from the journal's leases, which any apply holding the store keeps current.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.executors.base import WorkerHost
from reconciler.adapters.journal import read_leases
from reconciler.adapters.toolchain_probe import resolve_toolchains
from reconciler.app.applying import HostOptions, worker_hosts
from reconciler.app.host_toolchain import probe_host_compiler
from reconciler.app.planning import Workspace
from reconciler.core.toolchain import toolchain_identity, toolchain_label, toolchains_in_use
from reconciler.model.desired import ResolvedToolchain
from reconciler.model.errors import ReconcilerError
from reconciler.model.specset import SpecSet

PROBE_SECONDS = 15.0


@dataclass(frozen=True)
class ToolchainRow:
    """Whether one host can build with one toolchain of the spec set."""

    name: str
    compiler: str
    """What the build identity names: the version string (or store path) resolved here."""
    can_build: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "compiler": self.compiler,
            "can_build": self.can_build,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class WorkerRow:
    host: str
    slots: int
    arch: str
    tags: tuple[str, ...]
    healthy: bool
    detail: str
    running: int
    toolchains: tuple[ToolchainRow, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "slots": self.slots,
            "arch": self.arch,
            "tags": list(self.tags),
            "healthy": self.healthy,
            "detail": self.detail,
            "running_batches": self.running,
            "toolchains": [row.as_json() for row in self.toolchains],
        }


async def _health(host: WorkerHost) -> tuple[bool, str]:
    try:
        result = await host.run("true", timeout=PROBE_SECONDS)
    except ReconcilerError as error:
        return False, error.message
    if result.exit_status == 0:
        return True, "ok"
    return False, "timed out" if result.timed_out else f"`true` exited {result.exit_status}"


async def _toolchain_row(
    host: WorkerHost, resolved: ResolvedToolchain, *, healthy: bool
) -> ToolchainRow:
    if resolved.problem is not None:
        return ToolchainRow(
            resolved.name, "", False, f"not resolved on the planning host: {resolved.problem}"
        )
    toolchain = toolchain_identity(resolved)
    compiler = toolchain_label(toolchain)
    if not healthy:
        return ToolchainRow(resolved.name, compiler, False, "not asked: the host is unhealthy")
    try:
        answer = await probe_host_compiler(host, toolchain)
    except ReconcilerError as error:
        return ToolchainRow(resolved.name, compiler, False, error.message)
    if answer.problem is not None:
        return ToolchainRow(resolved.name, compiler, False, answer.problem)
    return ToolchainRow(resolved.name, compiler, True, "ok")


async def _probe(
    host: WorkerHost, toolchains: list[ResolvedToolchain]
) -> tuple[bool, str, tuple[ToolchainRow, ...]]:
    try:
        healthy, detail = await _health(host)
        rows = [await _toolchain_row(host, resolved, healthy=healthy) for resolved in toolchains]
    finally:
        await host.close()
    return healthy, detail, tuple(rows)


def list_workers(workspace: Workspace, *, specs: SpecSet, options: HostOptions) -> list[WorkerRow]:
    hosts = worker_hosts(specs, workspace=workspace, options=options)
    toolchains = list(resolve_toolchains(toolchains_in_use(specs)).values())

    async def probe_all() -> list[tuple[bool, str, tuple[ToolchainRow, ...]]]:
        return list(await asyncio.gather(*(_probe(host, toolchains) for host in hosts)))

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
            toolchains=toolchain_rows,
        )
        for host, (healthy, detail, toolchain_rows) in zip(hosts, health, strict=True)
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
        for toolchain in row.toolchains:
            verdict = "builds" if toolchain.can_build else "cannot build"
            said = f" ({toolchain.compiler})" if toolchain.compiler else ""
            detail = "" if toolchain.can_build else f": {toolchain.detail}"
            lines.append(f"    {verdict} {toolchain.name}{said}{detail}")
    return "\n".join(lines) + "\n"
