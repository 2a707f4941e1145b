"""One reconciler per journal: an exclusive `flock` held for as long as the journal is open.

`flock` rather than a pid file: the kernel drops the lock when its holder dies, however it dies
(SIGKILL, OOM killer, a crashed host's processes are gone too), so a lock never goes stale and
never needs clearing by hand. That is also what makes crash recovery sound: whoever holds the
lock knows every other process that ever wrote the journal is dead, so their leases are orphans.

The file's content (pid, host, start time) only explains a refusal to the second reconciler; it
is never trusted to decide anything. Caveat: on NFS, Linux emulates `flock` with POSIX locks,
which is sound only with a working lock manager; keep the journal on a local disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconciler.adapters.closing import Closing
from reconciler.model.errors import InfrastructureError, UserError

# Enough for the holder's JSON; a longer file is not ours and is described as unknown.
_HOLDER_BYTES = 4096


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as written into the lock file when it was taken."""

    pid: int
    hostname: str
    started_at: float
    """When the holder opened the journal (its injected clock, seconds since the epoch)."""
    owner: str
    """The holder's owner id, as recorded on its leases."""

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.started_at, UTC).isoformat(timespec="seconds")
        return f"pid {self.pid} on {self.hostname}, started {started}"


class JournalLocked(UserError):
    """Another live reconciler holds the journal: two would dispatch the same work twice."""

    def __init__(
        self, lock_path: Path, holder: LockHolder | None, *, guarding: str = "store"
    ) -> None:
        who = holder.describe() if holder is not None else "a process that has not said who it is"
        super().__init__(
            f"another reconciler is running on this {guarding} ({who})",
            where=str(lock_path),
            hint=(
                f"only one reconciler may run per {guarding}: wait for that one to finish or "
                "stop it; its lock is released the moment it exits, however it exits"
            ),
        )
        self.lock_path = lock_path
        self.holder = holder


class OwnerLock(Closing):
    """A held lock; `close()` releases it. Use `OwnerLock.acquire`."""

    def __init__(self, *, path: Path, fd: int, holder: LockHolder) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, *, now: float, owner: str, guarding: str = "store") -> OwnerLock:
        """Take the lock at `path` without waiting; `JournalLocked` if a live process holds it.

        `guarding` names what the lock protects in the refusal ("store", "spec checkout").
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Not inherited by exec'd children (PEP 446). A forked child *without* exec would
            # share the lock and keep it after we die; executors must spawn, not fork-and-run.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _lock_error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLocked(path, holder, guarding=guarding) from None
        except OSError as exc:
            os.close(fd)
            raise _lock_error(path, exc) from exc
        holder = LockHolder(
            pid=os.getpid(), hostname=socket.gethostname(), started_at=now, owner=owner
        )
        try:
            data = json.dumps(asdict(holder), sort_keys=True).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            os.close(fd)  # releases the lock
            raise _lock_error(path, exc) from exc
        return cls(path=path, fd=fd, holder=holder)

    def close(self) -> None:
        # The file stays: removing it would let a racing opener lock a different inode.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> LockHolder | None:
    """The holder as its lock file describes it, or None while it is still being written."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        fields = json.loads(os.pread(fd, _HOLDER_BYTES, 0))
        return LockHolder(
            pid=int(fields["pid"]),
            hostname=str(fields["hostname"]),
            started_at=float(fields["started_at"]),
            owner=str(fields["owner"]),
        )
    return None


def _lock_error(path: Path, exc: OSError) -> InfrastructureError:
    return InfrastructureError(
        f"cannot take the journal lock: {exc.strerror or exc.__class__.__name__}",
        where=str(path),
        hint="check that the journal's directory exists and is writable",
    )
