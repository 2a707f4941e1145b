"""The seam between the reconciler and a worker host: run a command, read a file, nothing more.

What a batch needs (a checkout, a build, a harness run, result files) is composed from these
primitives once, in the batch runner, so the local machine and an SSH host behave the same and a
test can stand a real sshd on 127.0.0.1 in for a farm. Commands are shell strings: whoever builds
one quotes every argument with `shlex.quote`; a host never interpolates anything itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from reconciler.model.execution import CommandResult

LineCallback = Callable[[str], None]


class WorkerHost(Protocol):
    """One worker host with `slots` parallel batch slots."""

    @property
    def name(self) -> str:
        """Stable name shown in `reconciler workers`, logs and results (`host` or `local`)."""

    @property
    def arch(self) -> str:
        """Architecture of the machine (`x86_64`, `aarch64`)."""

    @property
    def tags(self) -> frozenset[str]:
        """Capabilities matched against TestGroup `worker_tags` (`nvme`, `kvm`)."""

    @property
    def slots(self) -> int:
        """How many batches may run at once."""

    @property
    def healthy(self) -> bool:
        """False while the host cools down after repeated infrastructure failures: the
        scheduler offers none of its slots until then."""

    @property
    def workdir(self) -> str:
        """Absolute directory on the host under which workspaces and caches live."""

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        """Run `command` with `sh -c` on the host.

        On timeout the whole process group is killed and `timed_out` is set. `on_line` sees each
        output line (stdout and stderr merged) as it arrives, so finished subtests can be stored
        before the batch ends. A dropped connection raises `WorkerUnreachable`; a command that
        fails is not an exception (its exit status says so).
        """

    async def read_file(self, path: str) -> bytes | None:
        """The bytes of a file on the host (SFTP for SSH hosts); None if it does not exist."""

    async def close(self) -> None:
        """Drop connections; running commands are killed."""
