"""The embedded default worker: slots on the reconciler's own machine, run as subprocesses.

With no WorkerPool in the specs, everything runs here, so this host must behave like an SSH host
in every way a batch can notice: `sh -c` semantics, stdout and stderr merged in the order written,
lines streamed as they come, and a timeout that leaves nothing behind. Each command gets its own
process group (a new session) so a timeout can kill the whole tree, including children that a
harness started in the background, which would otherwise keep running and hold the output pipe;
and a supervisor (`supervisor.py`) stops that tree when the reconciler itself dies, even by
SIGKILL.

The environment is rebuilt from an allowlist rather than inherited: the reconciler may hold
tokens for git remotes or KCIDB in its own environment, and a test must never see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from reconciler.adapters.executors.base import LineCallback
from reconciler.adapters.executors.output import OutputLines
from reconciler.adapters.executors.supervisor import supervised
from reconciler.model.execution import CommandResult

INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER")
"""The only variables passed from the reconciler's environment to a command."""

DEFAULT_KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL, so a harness can tear down its VM and flush logs."""

_READ_CHUNK = 65536
_GROUP_POLL = 0.05
_DRAIN_AFTER_EXIT = 2.0
"""How long output may keep arriving after `sh` exited and its group was killed; a process that
left the group (its own setsid) and kept the pipe open must not hang the slot."""


def clean_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The allowlisted part of our environment, overlaid with the command's own variables."""
    environment = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
    environment.setdefault("PATH", os.defpath)
    environment.update(extra or {})
    return environment


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` (0: only probe) to a process group; False when no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


async def terminate_group(pgid: int, *, grace: float) -> None:
    """SIGTERM the group, give it `grace` seconds to exit, then SIGKILL what is left."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        await asyncio.sleep(_GROUP_POLL)
        if not signal_group(pgid, 0):
            return
    signal_group(pgid, signal.SIGKILL)


class LocalHost:
    """`slots` parallel batch slots on this machine, under `workdir`."""

    def __init__(
        self,
        *,
        workdir: Path,
        slots: int | None = None,
        arch: str | None = None,
        tags: frozenset[str] = frozenset(),
        kill_grace: float = DEFAULT_KILL_GRACE,
    ) -> None:
        self._workdir = workdir.expanduser().absolute()
        self._slots = slots if slots is not None else (os.cpu_count() or 1)
        self._arch = arch or platform.machine()
        self._tags = tags
        self._kill_grace = kill_grace
        self._running: set[int] = set()

    @property
    def name(self) -> str:
        return "local"

    @property
    def arch(self) -> str:
        return self._arch

    @property
    def tags(self) -> frozenset[str]:
        return self._tags

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def healthy(self) -> bool:
        # The machine running the reconciler: if it is down, nothing is dispatched anyway.
        return True

    @property
    def workdir(self) -> str:
        return str(self._workdir)

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        """Run `command` with `sh -c`, in `cwd` (default: the workdir, created on first use)."""
        # Acting lazily: the workdir appears when the first command needs it, not at load time.
        self._workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        # Our own pipe, not asyncio's PIPE: asyncio's wait() also waits for the pipe to close,
        # which a background child holding it would delay for as long as the child lives.
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *supervised(
                    command, parent=os.getpid(), grace=self._kill_grace, python=sys.executable
                ),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=cwd or self._workdir,
                env=clean_environment(env),
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        # With start_new_session the shell leads a new session, so its pid is the group id.
        pgid = process.pid
        self._running.add(pgid)
        output = OutputLines(on_line)
        pipe = await _PipeReader.open(read_fd, output)
        timed_out = False
        try:
            try:
                await asyncio.wait_for(_until_exit(process, pipe.done, output), timeout)
            except TimeoutError:
                timed_out = True
                await terminate_group(pgid, grace=self._kill_grace)
                await process.wait()
            # A command owns its group: whatever `sh` left running in the background is stopped
            # when it exits (as on SSH hosts), so no stray process keeps the slot busy.
            await terminate_group(pgid, grace=self._kill_grace)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pipe.done), _DRAIN_AFTER_EXIT)
        except BaseException:
            # Cancelled, or a callback failed: the command must not outlive its caller. Reaping
            # it is quick after SIGKILL, and leaves no half-closed subprocess transport behind.
            signal_group(pgid, signal.SIGKILL)
            await asyncio.shield(process.wait())
            raise
        finally:
            pipe.close()
            self._running.discard(pgid)
        output.finish()
        if output.callback_error is not None:
            raise output.callback_error
        return CommandResult(
            exit_status=None if timed_out else process.returncode,
            output=output.output,
            timed_out=timed_out,
            duration=time.monotonic() - started,
        )

    async def read_file(self, path: str) -> bytes | None:
        """The bytes of `path` (relative paths are under the workdir); None if it is missing."""
        try:
            return await asyncio.to_thread((self._workdir / path).read_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def close(self) -> None:
        """Kill every command still running on this host."""
        for pgid in list(self._running):
            signal_group(pgid, signal.SIGKILL)


async def _until_exit(
    process: asyncio.subprocess.Process, eof: asyncio.Future[object], output: OutputLines
) -> None:
    """Wait for `sh` to exit, or stop early when the line callback failed."""
    exited: asyncio.Future[object] = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait([eof, exited], return_when=asyncio.FIRST_COMPLETED)
        if output.callback_error is not None:
            raise output.callback_error
        await exited
    finally:
        exited.cancel()


class _PipeReader(asyncio.Protocol):
    """Feeds the read end of the command's output pipe into `OutputLines` as chunks arrive."""

    def __init__(self, output: OutputLines) -> None:
        self._output = output
        self._transport: asyncio.ReadTransport | None = None
        self.done: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, read_fd: int, output: OutputLines) -> _PipeReader:
        reader = cls(output)
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        await asyncio.get_running_loop().connect_read_pipe(lambda: reader, pipe)
        return reader

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.ReadTransport, transport)

    def data_received(self, data: bytes) -> None:
        self._output.feed(data)
        if self._output.callback_error is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
