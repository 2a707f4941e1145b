"""The lease journal and its owner lock: real processes, real SIGKILL, a real SQLite file."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from reconciler.adapters.journal import (
    Journal,
    JournalError,
    JournalLocked,
    LeaseRecord,
    LockHolder,
    read_leases,
)
from reconciler.model.errors import ExitCode

# A reconciler in miniature: opens the journal, leases what argv says, reports, then waits to be
# killed. Reading stdin (not sleeping) makes it exit by itself if the test dies first.
CHILD = """
import sys
from pathlib import Path
from reconciler.adapters.journal import Journal

journal = Journal.open(Path(sys.argv[1]), now=1000.0, lease_seconds=60)
for n in range(int(sys.argv[2])):
    journal.lease(f"batch-{n}", payload=f'{{"n": {n}}}', worker=f"host-{n}/0", now=1000.0 + n)
print(journal.owner, flush=True)
sys.stdin.read()
"""


@contextmanager
def child_holding(path: Path, *, leases: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A live child process holding the journal at `path`; yields it and its owner id."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(leases)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            owner = child.stdout.readline().strip()
            assert owner, "the child died before taking the lock"
            yield child, owner
        finally:
            child.kill()
            child.wait()


def test_sigkill_leaves_exactly_its_leases_as_orphans(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with child_holding(path, leases=3) as (child, owner):
        child.kill()  # SIGKILL: no cleanup, no close, no atexit
        assert child.wait() == -9
    assert owner.split(":")[1] == str(child.pid)

    with Journal.open(path, now=2000.0) as journal:
        assert journal.owner != owner
        assert journal.orphaned() == [
            LeaseRecord(
                batch_id=f"batch-{n}",
                payload=f'{{"n": {n}}}',
                worker=f"host-{n}/0",
                leased_at=1000.0 + n,
                expires_at=1060.0 + n,
                owner=owner,
            )
            for n in range(3)
        ]
        # Orphans are not ours: they are neither active nor expired leases of this process.
        assert journal.active() == []
        assert journal.expired(10_000.0) == []
        assert journal.forget(["batch-0", "batch-2", "batch-unknown"]) == 2
        assert [lease.batch_id for lease in journal.orphaned()] == ["batch-1"]

    with Journal.open(path, now=3000.0) as journal:
        assert [lease.batch_id for lease in journal.orphaned()] == ["batch-1"]


def test_a_second_live_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with child_holding(path, leases=1) as (child, owner):
        with pytest.raises(JournalLocked) as caught:
            Journal.open(path, now=2000.0)
        error = caught.value
        assert error.exit_code is ExitCode.USER_ERROR
        assert error.holder == LockHolder(
            pid=child.pid, hostname=socket.gethostname(), started_at=1000.0, owner=owner
        )
        assert str(error) == (
            f"{path}.lock: another reconciler is running on this store "
            f"(pid {child.pid} on {socket.gethostname()}, started 1970-01-01T00:16:40+00:00) "
            "(hint: only one reconciler may run per store: wait for that one to finish or stop "
            "it; its lock is released the moment it exits, however it exits)"
        )
    # The holder is dead: its lock went with it, and its lease is an orphan.
    with Journal.open(path, now=2000.0) as journal:
        assert [lease.owner for lease in journal.orphaned()] == [owner]


def test_one_process_cannot_open_the_journal_twice(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal.open(path, now=1.0) as journal:
        with pytest.raises(JournalLocked) as caught:
            Journal.open(path, now=2.0)
        assert caught.value.holder is not None
        assert caught.value.holder.owner == journal.owner
        assert caught.value.holder.pid == os.getpid()
    with Journal.open(path, now=3.0):
        pass


def test_an_unreadable_lock_file_still_refuses(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal.open(path, now=1.0):
        Path(f"{path}.lock").write_text("half-writ")
        with pytest.raises(JournalLocked, match="has not said who it is") as caught:
            Journal.open(path, now=2.0)
        assert caught.value.holder is None


def test_leases_expire_and_renew_on_the_injected_clock(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.sqlite", now=0.0, lease_seconds=60) as journal:
        journal.lease("a", payload="{}", worker="w1/0", now=1000.0)
        journal.lease("b", payload="{}", worker="w2/0", now=1010.0)
        a = LeaseRecord("a", "{}", "w1/0", 1000.0, 1060.0, journal.owner)
        b = LeaseRecord("b", "{}", "w2/0", 1010.0, 1070.0, journal.owner)
        assert journal.active() == [a, b]
        assert journal.expired(1059.9) == []
        assert journal.expired(1060.0) == [a]

        assert journal.renew("a", now=1050.0) is True
        renewed = LeaseRecord("a", "{}", "w1/0", 1000.0, 1110.0, journal.owner)
        assert journal.expired(1100.0) == [b]
        assert journal.expired(1200.0) == [b, renewed]

        assert journal.release("b") is True
        assert journal.release("b") is False
        assert journal.renew("b", now=1100.0) is False  # a late heartbeat is harmless
        assert journal.active() == [renewed]
        assert journal.orphaned() == []


def test_leasing_a_batch_twice_is_refused_but_an_orphan_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal.open(path, now=0.0) as first:
        first.lease("a", payload="old", worker="w1/0", now=10.0)
        with pytest.raises(ValueError, match="already leased"):
            first.lease("a", payload="new", worker="w2/0", now=11.0)
        assert [(lease.payload, lease.worker) for lease in first.active()] == [("old", "w1/0")]
    with Journal.open(path, now=100.0, lease_seconds=5) as second:
        second.lease("a", payload="new", worker="w2/0", now=100.0)
        assert second.orphaned() == []
        assert second.active() == [LeaseRecord("a", "new", "w2/0", 100.0, 105.0, second.owner)]
        assert second.forget(["a"]) == 0  # forget never drops our own lease


def test_failures_count_and_cool_down_on_the_injected_clock(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.sqlite", now=0.0) as journal:
        assert journal.failures("unit-1") == (0, None)
        assert journal.cooling_down("unit-1", now=0.0, cooldown_seconds=600) is False
        assert [
            journal.record_failure("unit-1", now=100.0 * n, message=f"ssh dropped #{n}")
            for n in (1, 2, 3)
        ] == [1, 2, 3]
        journal.record_failure("build-1", now=250.0, message="disk full")
        assert journal.failures("unit-1") == (3, 300.0)
        assert journal.failure_message("unit-1") == "ssh dropped #3"
        assert journal.cooling_down("unit-1", now=899.0, cooldown_seconds=600) is True
        assert journal.cooling_down("unit-1", now=900.0, cooldown_seconds=600) is False
        journal.clear_failures("unit-1")
        assert journal.failures("unit-1") == (0, None)
        assert journal.failure_message("unit-1") is None
        assert journal.failures("build-1") == (1, 250.0)


def test_failures_and_leases_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal.open(path, now=0.0) as journal:
        journal.record_failure("unit-1", now=5.0, message="timeout")
        journal.lease("a", payload="{}", worker="w/0", now=5.0)
    with Journal.open(path, now=10.0) as journal:
        assert journal.failures("unit-1") == (1, 5.0)
        # A cleanly closed owner is as gone as a killed one: its leases are orphans.
        assert [lease.batch_id for lease in journal.orphaned()] == ["a"]


def test_journal_settings_and_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"  # the directory is created on open
    with Journal.open(path, now=1234.5) as journal:
        holder = json.loads(Path(f"{path}.lock").read_text())
        assert holder == {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "started_at": 1234.5,
            "owner": journal.owner,
        }
        with closing(sqlite3.connect(path)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert journal._connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_a_journal_of_another_version_is_refused_and_the_lock_released(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA user_version = 7")
    with pytest.raises(JournalError, match="schema version 7") as caught:
        Journal.open(path, now=0.0)
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE
    path.unlink()
    with Journal.open(path, now=0.0) as journal:  # the failed open did not keep the lock
        assert journal.active() == []


def test_lease_seconds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lease_seconds"):
        Journal.open(tmp_path / "journal.sqlite", now=0.0, lease_seconds=0)


def test_read_leases_sees_a_live_holders_leases_without_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    assert read_leases(path) == []
    assert not path.exists()  # reading created nothing
    with child_holding(path, leases=2) as (_, owner):
        assert read_leases(path) == [
            LeaseRecord(f"batch-{n}", f'{{"n": {n}}}', f"host-{n}/0", 1000.0 + n, 1060.0 + n, owner)
            for n in range(2)
        ]
    with closing(sqlite3.connect(tmp_path / "other.sqlite")) as connection:
        connection.execute("CREATE TABLE unrelated (x)")
    assert read_leases(tmp_path / "other.sqlite") == []
