"""LocalHost with real subprocesses: output, streaming, environment, timeouts, cwd, files."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reconciler.adapters.executors.local import LocalHost
from tests.sshd import wait_until_dead

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture
def exec_local(tmp_path: Path) -> LocalHost:
    return LocalHost(workdir=tmp_path / "work", slots=2, arch="x86_64", kill_grace=0.5)


def test_exit_status_and_merged_output_in_order(exec_local: LocalHost) -> None:
    result = run_async(
        exec_local.run("echo one; echo two >&2; echo three; printf 'no newline' >&2; exit 7")
    )
    assert result.exit_status == 7
    assert result.output == b"one\ntwo\nthree\nno newline"
    assert result.timed_out is False


def test_lines_reach_the_callback_while_the_command_runs(
    exec_local: LocalHost, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "first":
            # The command waits for this file: it only finishes if we saw `first` while it ran.
            gate.touch()

    command = f"echo first; while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.02; done; echo last"
    result = run_async(exec_local.run(command, on_line=on_line, timeout=10))
    assert (result.exit_status, seen) == (0, ["first", "last"])


def test_secrets_in_our_environment_do_not_reach_the_command(
    exec_local: LocalHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KCIDB_TOKEN", "s3cret")
    monkeypatch.setenv("HOME", "/home/reconciler")
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    result = run_async(exec_local.run(command, env={"ARCH": "x86_64"}))
    environment = json.loads(result.output)
    assert "KCIDB_TOKEN" not in environment
    assert environment["ARCH"] == "x86_64"
    assert environment["HOME"] == "/home/reconciler"
    assert set(environment) <= {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "ARCH", "PWD"}


def test_timeout_kills_the_whole_group_including_background_children(
    exec_local: LocalHost, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"sleep 300 & echo $! > {shlex.quote(str(pid_file))}; echo started; sleep 300"
    result = run_async(exec_local.run(command, timeout=1))
    assert (result.exit_status, result.timed_out, result.output) == (None, True, b"started\n")
    child = int(pid_file.read_text())
    assert wait_until_dead(child), f"background child {child} survived the timeout"


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(
    exec_local: LocalHost, tmp_path: Path
) -> None:
    pid_file = tmp_path / "stubborn.pid"
    command = f"sh -c 'trap \"\" TERM; echo $$ > {pid_file}; sleep 300' & sleep 300"
    result = run_async(exec_local.run(command, timeout=1))
    assert result.timed_out is True
    assert wait_until_dead(int(pid_file.read_text()))


def test_what_the_command_leaves_in_the_background_is_killed_when_it_exits(
    exec_local: LocalHost, tmp_path: Path
) -> None:
    pid_file = tmp_path / "straggler.pid"
    result = run_async(exec_local.run(f"sleep 300 & echo $! > {pid_file}; echo done"))
    assert (result.exit_status, result.output) == (0, b"done\n")
    assert wait_until_dead(int(pid_file.read_text()))


def test_cwd_defaults_to_the_workdir_and_can_be_given(
    exec_local: LocalHost, tmp_path: Path
) -> None:
    assert run_async(exec_local.run("pwd -P")).output.decode().strip() == exec_local.workdir
    elsewhere = tmp_path / "with space"
    elsewhere.mkdir()
    result = run_async(exec_local.run("pwd -P", cwd=str(elsewhere)))
    assert result.output.decode().strip() == str(elsewhere.resolve())


def test_read_file(exec_local: LocalHost) -> None:
    run_async(exec_local.run("printf 'a\\0b' > results.bin"))
    assert run_async(exec_local.read_file("results.bin")) == b"a\0b"
    assert run_async(exec_local.read_file(f"{exec_local.workdir}/results.bin")) == b"a\0b"
    assert run_async(exec_local.read_file("missing.json")) is None


def test_cancelling_a_run_kills_its_group(exec_local: LocalHost, tmp_path: Path) -> None:
    pid_file = tmp_path / "cancelled.pid"

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(exec_local.run(f"echo $$ > {pid_file}; sleep 300"))
        while not pid_file.exists() or not pid_file.read_text():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(cancel_midway())
    assert wait_until_dead(int(pid_file.read_text()))


def test_a_failing_line_callback_stops_the_command_and_is_raised(
    exec_local: LocalHost, tmp_path: Path
) -> None:
    pid_file = tmp_path / "sh.pid"

    def on_line(line: str) -> None:
        raise ValueError(f"cannot parse {line!r}")

    with pytest.raises(ValueError, match="cannot parse 'garbage'"):
        run_async(exec_local.run(f"echo $$ > {pid_file}; echo garbage; sleep 300", on_line=on_line))
    assert wait_until_dead(int(pid_file.read_text()))


def test_host_description() -> None:
    host = LocalHost(workdir=Path("relative/work"), tags=frozenset({"kvm"}))
    assert (host.name, host.slots, host.tags) == ("local", os.cpu_count(), frozenset({"kvm"}))
    assert host.workdir == str(Path.cwd() / "relative/work")
