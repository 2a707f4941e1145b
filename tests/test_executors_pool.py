"""hosts_from_specs: the SSH hosts of every WorkerPool, or the embedded local host."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.executors.pool import hosts_from_specs
from reconciler.adapters.executors.ssh import SshHost
from reconciler.model.errors import UserError
from reconciler.model.specs import WorkerHost, WorkerPool


def test_hosts_from_specs(tmp_path: Path) -> None:
    def pool(name: str, *hosts: WorkerHost) -> WorkerPool:
        return WorkerPool(kind="WorkerPool", name=name, hosts=list(hosts))

    local = hosts_from_specs({}, known_hosts=None, accept_new=False, local_workdir=tmp_path)
    assert len(local) == 1 and isinstance(local[0], LocalHost)
    assert local[0].workdir == str(tmp_path)

    big = WorkerHost(host="big.example.org", slots=8, arch="x86_64", tags=["kvm"])
    arm = WorkerHost(host="arm.example.org", port=2222, arch="aarch64", user="ci")
    hosts = hosts_from_specs(
        {"z-arm": pool("z-arm", arm), "a-x86": pool("a-x86", big)},
        known_hosts=tmp_path / "known_hosts",
        accept_new=True,
        local_workdir=tmp_path,
    )
    assert [(h.name, h.arch, h.slots, h.tags) for h in hosts] == [
        ("big.example.org", "x86_64", 8, frozenset({"kvm"})),
        ("arm.example.org:2222", "aarch64", 1, frozenset()),
    ]
    assert all(isinstance(h, SshHost) and h.options.accept_new for h in hosts)

    with pytest.raises(UserError, match=r"big\.example\.org is listed in WorkerPool 'a'"):
        hosts_from_specs(
            {"a": pool("a", big), "b": pool("b", big)},
            known_hosts=None,
            accept_new=False,
            local_workdir=tmp_path,
        )
