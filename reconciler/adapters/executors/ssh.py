"""SSH worker hosts: one asyncssh connection per host, a channel per running command.

A farm host runs several batch slots at once; opening a connection per slot would multiply
handshakes and sshd processes, so the first operation opens one connection (lazily) and every
command is a channel on it. Everything a spec says about a host is used, and nothing else: the
user's ~/.ssh/config is not read, so a host behaves the same on every reconciler machine.

Each command is wrapped so that it dies with its channel (ssh_command.py); host keys follow
known_hosts, with an explicit accept-new (ssh_known_hosts.py); a host that keeps failing is taken
out for a while, and reconnects back off exponentially (ssh_health.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import posixpath
import shlex
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import asyncssh
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from reconciler.adapters.executors.base import LineCallback
from reconciler.adapters.executors.output import OutputLines
from reconciler.adapters.executors.ssh_command import remote_command
from reconciler.adapters.executors.ssh_health import Backoff, HostHealth, utc_now
from reconciler.adapters.executors.ssh_known_hosts import (
    HostKeyPolicy,
    read_known_hosts,
    record_host_key,
)
from reconciler.model.errors import InfrastructureError, WorkerUnreachable
from reconciler.model.execution import CommandResult
from reconciler.model.specs import WorkerHost as WorkerHostSpec

DEFAULT_WORKDIR = "/var/tmp/kernel-reconciler-{user}"  # noqa: S108 (checked by the probe)
"""Known without connecting (`workdir` is a plain property callers read before any command), on
disk rather than in a tmpfs /tmp (kernel trees and build caches are large), and kept across
reboots. /var/tmp is shared, so the connection probe refuses a default workdir that is a symlink
or belongs to another user, and creates it private (umask 077)."""

_CONNECT_PROBE = """\
command -v setsid >/dev/null || { echo 'setsid (util-linux) is missing' >&2; exit 97; }
d=$1
(umask 077 && mkdir -p "$d") || exit 98
if [ "$2" = shared ] && { [ -L "$d" ] || [ ! -O "$d" ]; }; then
  echo "$d is a symlink or belongs to another user" >&2; exit 98
fi
"""


class WorkerAccessDenied(WorkerUnreachable):
    """The host answered but refused us, or we refused it (host key, login, identity file).

    Retrying will not help until someone changes known_hosts, keys or the spec.
    """

    retryable = False


@dataclass(frozen=True)
class SshOptions:
    """How the reconciler connects to every SSH host; specs only say where the hosts are."""

    known_hosts: Path | None = None
    """known_hosts file to verify (and, with accept_new, record) host keys; ~/.ssh/known_hosts."""
    accept_new: bool = False
    connect_timeout: float = 15.0
    keepalive_interval: float = 15.0
    """Seconds between keepalive requests, so a host that vanished is noticed mid-command."""
    keepalive_count_max: int = 3
    """Unanswered keepalives before the connection counts as dropped."""
    backoff: Backoff = field(default_factory=Backoff)
    unhealthy_after: int = 3
    """Consecutive infrastructure failures before the host is taken out for `cool_down`."""
    cool_down: timedelta = timedelta(minutes=5)
    kill_grace: float = 5.0
    """Seconds between SIGTERM and SIGKILL for a remote command's process group."""
    workdir: str | None = None
    """Absolute remote workdir, the same for every host; default DEFAULT_WORKDIR."""

    def known_hosts_path(self) -> Path:
        return (self.known_hosts or Path("~/.ssh/known_hosts")).expanduser()


class _CommandSession(asyncssh.SSHClientSession[bytes]):
    def __init__(self, output: OutputLines) -> None:
        self._output = output
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: Exception | None = None

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._output.feed(data)
        if self._output.callback_error is not None and not self.finished.done():
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        if not self.finished.done():
            self.finished.set_result(None)


class SshHost:
    """One WorkerHost spec, reached over one shared SSH connection."""

    def __init__(
        self,
        spec: WorkerHostSpec,
        *,
        options: SshOptions | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.spec = spec
        self.options = options or SshOptions()
        self._sleep = sleep
        self.health = HostHealth(
            unhealthy_after=self.options.unhealthy_after, cool_down=self.options.cool_down, now=now
        )
        self.reconnect_wait = self.options.backoff.wait_strategy()
        """The tenacity wait strategy between reconnect attempts (exposed to assert its values)."""
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._login = spec.user or getpass.getuser()
        """The remote user: the spec's, or ours as OpenSSH would (no ~/.ssh/config is read)."""
        self._workdir = self.options.workdir or DEFAULT_WORKDIR.format(user=self._login)
        self._lock = asyncio.Lock()
        self._closed_by_us: weakref.WeakSet[asyncssh.SSHClientConnection] = weakref.WeakSet()

    @property
    def name(self) -> str:
        host = f"[{self.spec.host}]" if ":" in self.spec.host else self.spec.host
        return host if self.spec.port == 22 else f"{host}:{self.spec.port}"

    @property
    def arch(self) -> str:
        return self.spec.arch

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.spec.tags)

    @property
    def slots(self) -> int:
        return self.spec.slots

    @property
    def workdir(self) -> str:
        """The remote workdir (created at connection): the option's, or DEFAULT_WORKDIR."""
        return self._workdir

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    @property
    def unhealthy_until(self) -> datetime | None:
        return self.health.unhealthy_until

    async def connect(self) -> None:
        """Open the shared connection now (run and read_file do it on first use).

        Retries with exponential backoff, checks the host can run our wrapper and creates the
        workdir. Raises WorkerUnreachable (WorkerAccessDenied when retrying cannot help).
        """
        await self._open()

    async def _open(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._connection is not None:
                return self._connection
            until = self.health.unhealthy_until
            if until is not None:
                raise WorkerUnreachable(
                    f"{self.name} is unhealthy until {until.isoformat(timespec='seconds')} after "
                    f"{self.health.consecutive_failures} consecutive failures "
                    f"(last: {self.health.last_failure})",
                    hint="it is retried after that; check the host and its sshd meanwhile",
                )
            try:
                connection = await self._connect_with_backoff()
                await self._prepare(connection)
            except WorkerUnreachable as exc:
                self.health.record_failure(exc.message)
                raise
            self._connection = connection
            return connection

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        """Run `command` with `sh -c` in `cwd` (default: the workdir); see WorkerHost.run."""
        connection = await self._open()
        output = OutputLines(on_line)
        started = time.monotonic()
        remote = remote_command(
            command, cwd=cwd or self.workdir, env=env or {}, kill_grace=self.options.kill_grace
        )
        session = _CommandSession(output)
        try:
            channel, _ = await connection.create_session(lambda: session, remote, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise self._dropped("could not open a channel", exc) from exc
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(session.finished), timeout)
        except TimeoutError:
            timed_out = True
            # EOF on the command's stdin is the wrapper's signal to kill the process group.
            channel.write_eof()
            try:
                await asyncio.wait_for(session.finished, self.options.kill_grace + 10)
            except TimeoutError:
                channel.close()
        except BaseException:
            channel.close()  # sshd closes the pipe: the wrapper kills the group
            raise
        if output.callback_error is not None:
            channel.close()
            raise output.callback_error
        status = channel.get_exit_status()
        if connection in self._closed_by_us:
            raise WorkerUnreachable(f"{self.name}: closed while a command was running")
        if session.lost is not None or (status is None and not timed_out):
            raise self._dropped("connection lost mid-command", session.lost)
        output.finish()
        if output.callback_error is not None:
            raise output.callback_error
        self.health.record_success()
        return CommandResult(
            exit_status=None if timed_out or status == -1 else status,
            output=output.output,
            timed_out=timed_out,
            duration=time.monotonic() - started,
        )

    async def read_file(self, path: str) -> bytes | None:
        """The bytes of `path` over SFTP (relative paths are under the workdir); None if absent."""
        connection = await self._open()
        full_path = posixpath.join(self.workdir, path)
        try:
            if self._sftp is None:
                self._sftp = await connection.start_sftp_client()
            async with self._sftp.open(full_path, "rb") as remote_file:
                content = cast(bytes, await remote_file.read())
        except asyncssh.SFTPNoSuchFile:
            return None
        except asyncssh.SFTPError as exc:
            raise InfrastructureError(
                f"{self.name}: cannot read {full_path}: {exc.reason}", hint="check permissions"
            ) from exc
        except (asyncssh.Error, OSError) as exc:
            raise self._dropped(f"reading {full_path} failed", exc) from exc
        self.health.record_success()
        return content

    async def close(self) -> None:
        """Close the connection; sshd then closes every channel and the wrappers kill commands."""
        connection, self._connection = self._connection, None
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            sftp.exit()
            with contextlib.suppress(asyncssh.Error, OSError):
                await sftp.wait_closed()
        if connection is not None:
            # Commands still running see their channels close; that is no failure of the host.
            self._closed_by_us.add(connection)
            connection.close()
            await connection.wait_closed()

    def _dropped(self, what: str, exc: BaseException | None) -> WorkerUnreachable:
        reason = f"{what}: {exc}" if exc else what
        self.health.record_failure(reason)
        self._forget(self._connection)
        return WorkerUnreachable(
            f"{self.name}: {reason}", hint="the batch is re-queued; the host is retried later"
        )

    def _forget(self, connection: asyncssh.SSHClientConnection | None) -> None:
        if connection is not None and connection is self._connection:
            self._connection = None
            self._sftp = None
            connection.abort()

    async def _connect_with_backoff(self) -> asyncssh.SSHClientConnection:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.options.backoff.attempts),
            wait=self.reconnect_wait,
            retry=retry_if_exception(
                lambda exc: isinstance(exc, WorkerUnreachable) and exc.retryable
            ),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._connect_once()
        raise AssertionError("tenacity stops by raising")  # pragma: no cover

    async def _connect_once(self) -> asyncssh.SSHClientConnection:
        known_hosts_file = self.options.known_hosts_path()
        known = read_known_hosts(known_hosts_file)
        policy = HostKeyPolicy(known=known, accept_new=self.options.accept_new)
        where = f"{self._login}@{self.name}"
        try:
            connection, _ = await asyncssh.create_connection(
                lambda: policy,
                self.spec.host,
                self.spec.port,
                username=self._login,
                known_hosts=known,
                config=[],
                connect_timeout=self.options.connect_timeout,
                keepalive_interval=self.options.keepalive_interval,
                keepalive_count_max=self.options.keepalive_count_max,
                **self._client_key_options(),
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise WorkerAccessDenied(
                f"{where}: refused: {policy.refusal or exc.reason}",
                hint=f"verify the host, then fix its entry in {known_hosts_file}",
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise WorkerAccessDenied(
                f"{where}: login refused: {exc.reason}",
                hint="check the user and identity_file of this host in its WorkerPool spec",
            ) from exc
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise WorkerUnreachable(f"{where}: cannot connect: {exc}") from exc
        if policy.new_key is not None:
            record_host_key(
                known_hosts_file, host=self.spec.host, port=self.spec.port, key=policy.new_key
            )
        policy.lost = lambda: self._forget(connection)
        return connection

    def _client_key_options(self) -> dict[str, object]:
        if self.spec.identity_file is None:
            return {}  # asyncssh's defaults: the agent, then ~/.ssh/id_*
        path = Path(self.spec.identity_file).expanduser()
        try:
            key = asyncssh.read_private_key(path)
        except (OSError, asyncssh.KeyImportError) as exc:
            raise WorkerAccessDenied(
                f"{self.name}: cannot read identity_file {path}: {exc}",
                hint="identity_file names a private key file on the reconciler host",
            ) from exc
        # Only the named key, as OpenSSH's IdentitiesOnly: an agent's keys could log in as
        # someone else, and each refused key counts against MaxAuthTries.
        return {"client_keys": [key], "agent_path": None}

    async def _prepare(self, connection: asyncssh.SSHClientConnection) -> None:
        """Check the host can run our wrapper, and create the workdir."""
        shared = "private" if self.options.workdir else "shared"
        probe = shlex.join(["sh", "-c", _CONNECT_PROBE, "probe", self._workdir, shared])
        try:
            completed = await connection.run(probe, check=False, timeout=30)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            connection.abort()
            raise WorkerUnreachable(f"{self.name}: preparing the host failed: {exc}") from exc
        if completed.exit_status != 0:
            connection.close()
            await connection.wait_closed()
            raise WorkerAccessDenied(
                f"{self.name}: preparing the host failed: {str(completed.stderr).strip()}",
                hint="install util-linux (setsid) and make the workdir creatable by the user",
            )
