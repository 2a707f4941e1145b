"""The worker hosts the specs ask for: every host of every WorkerPool, or this machine alone.

A farm with no WorkerPool spec still runs its tests (the embedded default): on local slots, one
per CPU. Once any pool exists, the specs are the whole truth about where work runs, and the local
machine is not added silently beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.adapters.executors.base import WorkerHost
from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.executors.ssh import SshHost, SshOptions
from reconciler.model.errors import UserError
from reconciler.model.specs import WorkerPool


def hosts_from_specs(
    pools: Mapping[str, WorkerPool],
    *,
    known_hosts: Path | None,
    accept_new: bool,
    local_workdir: Path,
    local_slots: int | None = None,
) -> list[WorkerHost]:
    """SSH hosts of all pools (sorted by pool name, then as listed), or one LocalHost if none.

    Remote workdirs are /var/tmp/kernel-reconciler-<user> on each host, created when the host is
    first connected; `known_hosts` None means ~/.ssh/known_hosts. The local host gets
    `local_slots` slots (default: one per CPU).
    """
    options = SshOptions(known_hosts=known_hosts, accept_new=accept_new)
    hosts: list[WorkerHost] = []
    pool_of: dict[str, str] = {}
    for pool_name in sorted(pools):
        for spec in pools[pool_name].hosts:
            host = SshHost(spec, options=options)
            if host.name in pool_of:
                # Two entries would double the host's slots and its connections.
                raise UserError(
                    f"worker host {host.name} is listed in WorkerPool {pool_of[host.name]!r} "
                    f"and in WorkerPool {pool_name!r}",
                    hint="list each host in one pool only",
                )
            pool_of[host.name] = pool_name
            hosts.append(host)
    if not hosts:
        hosts.append(LocalHost(workdir=local_workdir, slots=local_slots))
    return hosts
