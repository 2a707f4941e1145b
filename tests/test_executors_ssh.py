"""SshHost against a real OpenSSH sshd on 127.0.0.1 (see tests/sshd.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest
from tenacity import RetryCallState

from reconciler.adapters.executors import ssh as ssh_module
from reconciler.adapters.executors.ssh import SshHost, SshOptions, WorkerAccessDenied
from reconciler.adapters.executors.ssh_health import Backoff
from reconciler.model.errors import WorkerUnreachable
from reconciler.model.specs import WorkerHost
from tests.sshd import SshServer, running_sshd, wait_until_dead

T = TypeVar("T")

# The sshd process that serves the connection a command runs on: its nearest `sshd` ancestor.
SERVING_SSHD = (
    'p=$$; while c=$(cat /proc/$p/comm); [ "${c#sshd}" = "$c" ]; do '
    "p=$(cut -d' ' -f4 /proc/$p/stat); done; echo $p"
)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def exec_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def exec_known_hosts(tmp_path: Path, exec_sshd: SshServer) -> Path:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(exec_sshd.known_hosts_line())
    return known_hosts


def spec_for(server: SshServer) -> WorkerHost:
    return WorkerHost(
        host=server.host,
        port=server.port,
        user=server.user,
        identity_file=str(server.client_key),
        slots=4,
        tags=["kvm"],
    )


class RecordedSleeps(list[float]):
    """Stands in for asyncio.sleep: keeps the waits tenacity asks for, without waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@asynccontextmanager
async def ssh_host(server: SshServer, **options: Any) -> AsyncIterator[SshHost]:
    options.setdefault("kill_grace", 0.5)
    host = SshHost(spec_for(server), options=SshOptions(**options))
    try:
        yield host
    finally:
        await host.close()


def test_run_returns_status_and_merged_output(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        lines: list[str] = []
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts, workdir=str(tmp_path)) as host:
            result = await host.run(
                'echo one; echo two >&2; echo "$GREETING"; pwd; exit 3',
                env={"GREETING": "hello; $(world) 'x'"},
                on_line=lines.append,
            )
            assert (result.exit_status, result.timed_out) == (3, False)
            assert lines == ["one", "two", "hello; $(world) 'x'", str(tmp_path)]
            assert result.output == "\n".join([*lines, ""]).encode()
            other = tmp_path / "dir with space"
            other.mkdir()
            in_other = await host.run("pwd", cwd=str(other))
            assert in_other.output == f"{other}\n".encode()

    run_async(scenario())


def test_default_workdir_is_private_under_var_tmp(
    exec_sshd: SshServer, exec_known_hosts: Path
) -> None:
    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts) as host:
            # Known before connecting: callers compose paths from it before their first command.
            assert host.workdir == f"/var/tmp/kernel-reconciler-{exec_sshd.user}"
            assert (await host.run("pwd")).output == f"{host.workdir}\n".encode()
        workdir = Path(host.workdir)
        assert (workdir.stat().st_uid, workdir.stat().st_mode & 0o777) == (os.geteuid(), 0o700)

    run_async(scenario())


def test_a_default_workdir_that_is_a_symlink_is_refused(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone else's symlink in a shared directory must not redirect our builds.
    monkeypatch.setattr(ssh_module, "DEFAULT_WORKDIR", str(tmp_path / "kr-{user}"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"kr-{exec_sshd.user}").symlink_to(tmp_path / "elsewhere")

    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts) as host:
            with pytest.raises(WorkerAccessDenied, match="is a symlink or belongs to another"):
                await host.run("true")

    run_async(scenario())


def test_concurrent_commands_are_channels_of_one_connection(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()

    def command(index: int) -> str:
        # Each waits until all three have started: they finish only if they ran at once.
        return f"touch {index}; while [ $(ls | wc -l) -lt 3 ]; do sleep 0.02; done; {SERVING_SSHD}"

    async def scenario() -> list[int]:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts) as host:
            results = await asyncio.gather(
                *(host.run(command(i), cwd=str(markers), timeout=20) for i in range(3))
            )
            assert [r.timed_out for r in results] == [False, False, False]
            return [int(r.output) for r in results]

    serving = run_async(scenario())
    assert len(set(serving)) == 1, f"commands were served by sshd processes {serving}"
    assert sorted(p.name for p in markers.iterdir()) == ["0", "1", "2"]


def test_read_file_over_sftp(exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts, workdir=str(tmp_path)) as host:
            await host.run("printf 'x\\0y\\n' > result.bin")
            assert await host.read_file("result.bin") == b"x\0y\n"
            assert await host.read_file(str(tmp_path / "result.bin")) == b"x\0y\n"
            assert await host.read_file("missing.json") is None

    run_async(scenario())


def test_arguments_with_shell_metacharacters_arrive_as_single_argv_entries(
    exec_sshd: SshServer, exec_known_hosts: Path
) -> None:
    arguments = [
        "; touch /tmp/pwned",
        "$(id)",
        "`id`",
        "it's",
        'say "hi"',
        "two  spaces",
        "back\\slash",
        "",
        "*",
        "line\nbreak",
        "a|b&c>d<e",
        "$HOME",
    ]
    script = "import json, sys; print(json.dumps(sys.argv[1:]))"
    command = shlex.join([sys.executable, "-c", script, *arguments])

    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts) as host:
            result = await host.run(command)
            assert result.exit_status == 0, result.output
            assert json.loads(result.output) == arguments

    run_async(scenario())


def test_unknown_host_key_is_refused_by_default(exec_sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    sleeps = RecordedSleeps()

    async def scenario() -> None:
        host = SshHost(
            spec_for(exec_sshd), options=SshOptions(known_hosts=known_hosts), sleep=sleeps
        )
        with pytest.raises(WorkerAccessDenied, match="is not in known_hosts") as refused:
            await host.run("true")
        assert refused.value.retryable is False
        await host.close()

    run_async(scenario())
    assert sleeps == []  # retrying cannot fix a host key
    assert not known_hosts.exists()


def test_accept_new_records_the_key_and_the_next_connection_verifies_it(
    exec_sshd: SshServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "new" / "known_hosts"

    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=known_hosts, accept_new=True) as host:
            assert (await host.run("echo first")).output == b"first\n"
        assert known_hosts.read_text() == exec_sshd.known_hosts_line()
        async with ssh_host(exec_sshd, known_hosts=known_hosts, accept_new=False) as host:
            assert (await host.run("echo second")).output == b"second\n"
        assert known_hosts.read_text() == exec_sshd.known_hosts_line()

    run_async(scenario())


def test_a_changed_host_key_is_refused_even_with_accept_new(
    exec_sshd: SshServer, tmp_path: Path
) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(exec_sshd.known_hosts_line(impostor))

    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=known_hosts, accept_new=True) as host:
            with pytest.raises(WorkerAccessDenied, match="CHANGED") as refused:
                await host.run("true")
            assert f"127.0.0.1:{exec_sshd.port}" in str(refused.value)

    run_async(scenario())
    assert known_hosts.read_text() == exec_sshd.known_hosts_line(impostor)


def test_timeout_kills_the_remote_process_group(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path
) -> None:
    child_pid = tmp_path / "child.pid"
    command = f"sleep 300 & echo $! > {child_pid}; echo $$ > {tmp_path}/sh.pid; sleep 300"

    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts) as host:
            result = await host.run(command, timeout=1)
            assert (result.exit_status, result.timed_out, result.output) == (None, True, b"")
            # The connection stays usable for the slot's next command.
            assert (await host.run("echo next")).output == b"next\n"
            assert host.healthy

    run_async(scenario())
    assert wait_until_dead(int(child_pid.read_text()))
    assert wait_until_dead(int((tmp_path / "sh.pid").read_text()))


def command_reporting_pids(directory: Path) -> str:
    """Writes the serving sshd's pid and a background child's pid, then hangs."""
    return (
        f"sleep 300 & echo $! > {directory}/child.pid; {SERVING_SSHD} > {directory}/sshd.pid; wait"
    )


async def wait_for_file(path: Path) -> int:
    while not path.exists() or not path.read_text().strip():
        await asyncio.sleep(0.02)
    return int(path.read_text())


def test_a_dropped_connection_raises_and_the_remote_command_dies(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts) as host:
            running = asyncio.ensure_future(host.run(command_reporting_pids(tmp_path)))
            serving = await wait_for_file(tmp_path / "sshd.pid")
            os.kill(serving, signal.SIGKILL)
            with pytest.raises(WorkerUnreachable, match=f"127.0.0.1:{exec_sshd.port}") as lost:
                await asyncio.wait_for(running, 10)
            assert lost.value.retryable is True
            assert str(exec_sshd.client_key) not in str(lost.value)
            assert host.health.consecutive_failures == 1
            # The next command reconnects.
            assert (await host.run("echo back")).output == b"back\n"
            assert host.health.consecutive_failures == 0

    run_async(scenario())
    assert wait_until_dead(int((tmp_path / "child.pid").read_text()))


def test_keepalive_notices_a_host_that_stopped_answering(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path
) -> None:
    async def scenario() -> int:
        async with ssh_host(
            exec_sshd, known_hosts=exec_known_hosts, keepalive_interval=0.2, keepalive_count_max=2
        ) as host:
            running = asyncio.ensure_future(host.run(command_reporting_pids(tmp_path)))
            serving = await wait_for_file(tmp_path / "sshd.pid")
            # A frozen sshd keeps the TCP connection open: only keepalives can notice.
            os.kill(serving, signal.SIGSTOP)
            try:
                with pytest.raises(WorkerUnreachable, match="connection lost mid-command"):
                    await asyncio.wait_for(running, 10)
            finally:
                os.kill(serving, signal.SIGKILL)
                os.kill(serving, signal.SIGCONT)
            return serving

    serving = run_async(scenario())
    assert wait_until_dead(serving)
    assert wait_until_dead(int((tmp_path / "child.pid").read_text()))


def test_reconnect_backoff_is_exponential_and_capped() -> None:
    wait = Backoff(attempts=8, initial=1.0, maximum=30.0).wait_strategy()

    def wait_before(attempt: int) -> float:
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return wait(state)

    assert [wait_before(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_host_that_keeps_failing_becomes_unhealthy(tmp_path: Path) -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    clock = [now]
    sleeps = RecordedSleeps()
    with running_sshd(tmp_path / "sshd") as server:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(server.known_hosts_line())
        options = SshOptions(
            known_hosts=known_hosts,
            backoff=Backoff(attempts=4, initial=0.5, maximum=10.0),
            unhealthy_after=2,
            cool_down=timedelta(minutes=5),
            kill_grace=0.5,
        )
        host = SshHost(spec_for(server), options=options, sleep=sleeps, now=lambda: clock[0])

        async def scenario() -> None:
            running = asyncio.ensure_future(host.run("sleep 300"))
            while not server.connection_processes():
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            server.stop()  # the host goes down under a running command: failure 1
            with pytest.raises(WorkerUnreachable, match="connection lost"):
                await asyncio.wait_for(running, 10)
            assert (host.healthy, sleeps) == (True, [])

            # Reconnecting: four attempts, refused each time, with the waits between them.
            with pytest.raises(WorkerUnreachable, match="cannot connect") as refused:
                await host.run("true")
            assert refused.value.retryable is True
            assert sleeps == [0.5, 1.0, 2.0]
            assert host.healthy is False
            assert host.unhealthy_until == now + timedelta(minutes=5)

            # While unhealthy it is not even tried.
            with pytest.raises(WorkerUnreachable, match="unhealthy until 2024-05-01T12:05:00"):
                await host.run("true")
            assert sleeps == [0.5, 1.0, 2.0]

            # After the cool-down the next operation probes it again.
            clock[0] = now + timedelta(minutes=5)
            assert host.healthy is True
            with pytest.raises(WorkerUnreachable, match="cannot connect"):
                await host.run("true")
            assert sleeps == [0.5, 1.0, 2.0] * 2
            assert host.unhealthy_until == now + timedelta(minutes=10)
            await host.close()

        run_async(scenario())


def test_cancelling_a_remote_command_kills_it(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with ssh_host(exec_sshd, known_hosts=exec_known_hosts) as host:
            running = asyncio.ensure_future(host.run(command_reporting_pids(tmp_path)))
            await wait_for_file(tmp_path / "sshd.pid")
            await wait_for_file(tmp_path / "child.pid")
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running

    run_async(scenario())
    assert wait_until_dead(int((tmp_path / "child.pid").read_text()))


def test_closing_the_host_kills_running_commands_without_marking_it_unhealthy(
    exec_sshd: SshServer, exec_known_hosts: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        host = SshHost(spec_for(exec_sshd), options=SshOptions(known_hosts=exec_known_hosts))
        running = asyncio.ensure_future(host.run(command_reporting_pids(tmp_path)))
        await wait_for_file(tmp_path / "child.pid")
        await host.close()
        with pytest.raises(WorkerUnreachable, match="closed while a command was running"):
            await asyncio.wait_for(running, 10)
        assert (host.healthy, host.health.consecutive_failures) == (True, 0)

    run_async(scenario())
    assert wait_until_dead(int((tmp_path / "child.pid").read_text()))
