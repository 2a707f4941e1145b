"""`reconciler apply` on a WorkerPool host reached over a real OpenSSH sshd on 127.0.0.1.

The worker checks out, builds and tests in its own workdir over SSH; results come back into the
store. When the connection is cut mid-batch, the subtests that finished stay stored, the rest run
again after a reconnect, and nothing is recorded as a failure that did not fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .farms import COMMITS, SUBTESTS, make_hostile_farm, make_slow_farm
from .sshd import SshServer, running_sshd

TOTAL = COMMITS * 2 * 2 * SUBTESTS
DESIGNED_FAILURES = COMMITS * 2 * 2  # one fail_* subtest per script, per commit and profile


@pytest.fixture(scope="module")
def apply_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def pool_spec(server: SshServer) -> str:
    return f"""---
kind: WorkerPool
name: loopback
hosts:
  - host: {server.host}
    port: {server.port}
    user: {server.user}
    slots: 2
    identity_file: {server.client_key}
"""


def ssh_farm(farm: Path, server: SshServer) -> Path:
    make_slow_farm(farm, extra_specs=pool_spec(server))
    (farm / "known_hosts").write_text(server.known_hosts_line())
    return farm


def apply(farm: Path) -> subprocess.Popen[bytes]:
    with (farm / "apply.err").open("ab") as errors:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "apply",
                "--specs",
                str(farm / "specs"),
                "--known-hosts",
                str(farm / "known_hosts"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )


def results(farm: Path) -> list[dict[str, object]]:
    return [
        json.loads(path.read_text())
        for path in sorted((farm / ".reconciler/store").glob("results/*/*.json"))
    ]


def test_apply_runs_batches_on_an_ssh_worker(apply_sshd: SshServer, tmp_path: Path) -> None:
    farm = ssh_farm(tmp_path / "farm", apply_sshd)
    assert apply(farm).wait(timeout=300) == 0, (farm / "apply.err").read_text()
    stored = results(farm)
    assert len(stored) == TOTAL
    assert sorted({a["worker"] for r in stored for a in r["attempts"]}) == [  # type: ignore[attr-defined]
        f"{apply_sshd.host}:{apply_sshd.port}"
    ]
    assert sum(r["status"] == "fail" for r in stored) == DESIGNED_FAILURES
    assert {r["status"] for r in stored} == {"pass", "fail"}


def test_a_connection_cut_mid_batch_keeps_finished_subtests_and_reruns_the_rest(
    apply_sshd: SshServer, tmp_path: Path
) -> None:
    farm = ssh_farm(tmp_path / "farm", apply_sshd)
    process = apply(farm)
    deadline = time.monotonic() + 120
    while not 0 < len(results(farm)) < TOTAL // 2:
        assert time.monotonic() < deadline, "no result arrived"
        assert process.poll() is None, (farm / "apply.err").read_text()
        time.sleep(0.02)
    cut_at = len(results(farm))
    for pid in apply_sshd.connection_processes():
        os.kill(pid, signal.SIGKILL)  # the connection (and the batches on it) drop
    assert process.wait(timeout=300) == 0, (farm / "apply.err").read_text()

    stored = results(farm)
    assert 0 < cut_at < TOTAL
    assert len(stored) == TOTAL
    # Nothing ran twice (one attempt each), no failure that was not designed, no error.
    assert [r["id"] for r in stored if len(r["attempts"]) != 1] == []  # type: ignore[arg-type]
    assert sum(r["status"] == "fail" for r in stored) == DESIGNED_FAILURES
    assert {r["status"] for r in stored} == {"pass", "fail"}
    # The cut was seen as infrastructure (re-queued), once per batch that was running on it.
    warnings = (farm / "apply.err").read_text().splitlines()
    lost = [line for line in warnings if "connection lost mid-command" in line]
    assert 1 <= len(lost) <= 2, warnings
    assert all(line.endswith("(attempt 1)") for line in lost)


def test_shell_syntax_in_branch_test_and_subtest_names_reaches_the_worker_as_data(
    apply_sshd: SshServer, tmp_path: Path
) -> None:
    sentinel = f"pwned-{os.getpid()}-{time.monotonic_ns()}"
    farm, branch = make_hostile_farm(
        tmp_path / "farm", sentinel=sentinel, extra_specs=pool_spec(apply_sshd)
    )
    (farm / "known_hosts").write_text(apply_sshd.known_hosts_line())
    assert apply(farm).wait(timeout=300) == 0, (farm / "apply.err").read_text()
    stored = results(farm)
    (test,) = {r["test"] for r in stored}
    assert test.startswith("tests/odd name $(touch${IFS}")
    assert {r["status"] for r in stored} == {"pass"}
    assert len(stored) == 3 * 2  # three subtests under two profiles
    assert "a b; $(touch${IFS}" in " ".join(str(r["subtest"]) for r in stored)
    # Commands ran in the worker's workdir, the repo, the farm, or home: look everywhere.
    places = [tmp_path, Path("/var/tmp"), Path.home(), Path.cwd(), Path("/tmp")]
    found = subprocess.run(
        ["find", *map(str, places), "-xdev", "-name", sentinel],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert found == "", f"shell syntax in a name was executed: {found}"
    assert "$(touch" in branch


def test_workers_lists_hosts_with_probed_health(apply_sshd: SshServer, tmp_path: Path) -> None:
    farm = ssh_farm(tmp_path / "farm", apply_sshd)
    from .sshd import free_port

    closed = free_port()
    with (farm / "specs/farm.yaml").open("a") as specs:
        specs.write(
            f"---\nkind: WorkerPool\nname: gone\nhosts:\n"
            f"  - {{host: 127.0.0.1, port: {closed}, user: {apply_sshd.user}, slots: 4, "
            f"arch: aarch64, tags: [kvm, nvme], identity_file: {apply_sshd.client_key}}}\n"
        )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "workers",
            "--json",
            "--specs",
            str(farm / "specs"),
            "--known-hosts",
            str(farm / "known_hosts"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["host"]: row for row in json.loads(done.stdout)}
    gcc = subprocess.run(
        ["gcc", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    assert rows[f"127.0.0.1:{closed}"] | {"detail": ""} == {
        "host": f"127.0.0.1:{closed}",
        "slots": 4,
        "arch": "aarch64",
        "tags": ["kvm", "nvme"],
        "healthy": False,
        "detail": "",
        "running_batches": 0,
        "toolchains": [
            {
                "name": "gcc",
                "compiler": gcc,
                "can_build": False,
                "detail": "not asked: the host is unhealthy",
            }
        ],
    }
    # Asked over SSH with the command a build would run: the worker's gcc is the planner's.
    assert rows[f"127.0.0.1:{apply_sshd.port}"] == {
        "host": f"127.0.0.1:{apply_sshd.port}",
        "slots": 2,
        "arch": "x86_64",
        "tags": [],
        "healthy": True,
        "detail": "ok",
        "running_batches": 0,
        "toolchains": [{"name": "gcc", "compiler": gcc, "can_build": True, "detail": "ok"}],
    }


def test_a_dead_host_is_skipped_once_unhealthy_and_the_live_one_does_the_work(
    apply_sshd: SshServer, tmp_path: Path
) -> None:
    from .sshd import free_port

    farm = ssh_farm(tmp_path / "farm", apply_sshd)
    closed = free_port()
    with (farm / "specs/farm.yaml").open("a") as specs:
        specs.write(
            f"---\nkind: WorkerPool\nname: gone\nhosts:\n"
            f"  - {{host: 127.0.0.1, port: {closed}, user: {apply_sshd.user}, slots: 1, "
            f"identity_file: {apply_sshd.client_key}}}\n"
        )
    process = apply(farm)
    assert process.wait(timeout=300) == 0, (farm / "apply.err").read_text()
    stored = results(farm)
    assert len(stored) == TOTAL
    workers = {a["worker"] for r in stored for a in r["attempts"]}  # type: ignore[attr-defined]
    assert workers == {f"127.0.0.1:{apply_sshd.port}"}
    assert [r["id"] for r in stored if len(r["attempts"]) != 1] == []  # type: ignore[arg-type]
    bounced = [
        line
        for line in (farm / "apply.err").read_text().splitlines()
        if line.startswith(f"WARNING: 127.0.0.1:{closed}/")
    ]
    # It fails at most `unhealthy_after` (3) times before no more work is offered to it.
    assert 1 <= len(bounced) <= 3, bounced
