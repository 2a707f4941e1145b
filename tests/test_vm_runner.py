"""vmrun: its initramfs, its CONFIG, and real boots of a real kernel.

The fast tests check the cpio writer by reading its archive back with busybox `cpio`, and
CONFIG checking. The slow ones run vmrun as a worker does (`sh -c "python3 -c PROGRAM
CONFIG"`) on the kernel from `kernel_tree.vm_kernel()` under QEMU, and read from /proc that no
QEMU outlives it. How vmrun reads the output is tested at its seam in `test_vm_watch`.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from reconciler.adapters.vm.program import vmrun_command, vmrun_program
from reconciler.adapters.vm.vmrun import SHIPPED_MODULES
from reconciler.adapters.vm.vmrun.errors import ConfigError
from reconciler.adapters.vm.vmrun.guest import payload_entries, write_initramfs
from reconciler.adapters.vm.vmrun.main import load_config

from .kernel_tree import vm_kernel
from .vm_guest import (
    event_kinds,
    events,
    kill_quietly,
    qemu_pids,
    read_until_event,
    run_vmrun,
    transcript,
    vm_config,
    wait_until_gone,
    write_tests,
)

BUSYBOX = "/bin/busybox"


# The first test's set-up may build the test kernel from nothing (2-3 minutes on 2 cores, as
# in CI): more than the suite's default 120 s per test, which still bounds the tests themselves
# through vmrun's own watchdogs.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def kernel() -> Path:
    return vm_kernel()


@pytest.fixture
def tests_dir(tmp_path: Path) -> Path:
    return write_tests(tmp_path / "checkout")


# --- the initramfs --------------------------------------------------------------------------


def test_the_initramfs_is_deterministic_and_a_real_cpio_reads_it(tests_dir: Path) -> None:
    (tests_dir / "suite/lib").mkdir()
    (tests_dir / "suite/lib/helper").write_text("#!/bin/sh\n")
    (tests_dir / "suite/lib/helper").chmod(0o750)
    (tests_dir / "suite/link").symlink_to("tap.sh")
    (tests_dir / "suite/.git").mkdir()
    (tests_dir / "suite/.git/HEAD").write_text("ref: refs/heads/main\n")
    images = []
    for name in ("first.cpio", "second.cpio"):
        size = write_initramfs(
            str(tests_dir.parent / name),
            busybox=BUSYBOX,
            init="#!/bin/busybox sh\n",
            command="sh suite/tap.sh a",
            tests_dir=str(tests_dir),
            payload=["suite"],
        )
        images.append((tests_dir.parent / name).read_bytes())
        assert size == len(images[-1])
    assert images[0] == images[1]

    listing = subprocess.run(
        [BUSYBOX, "cpio", "-t", "-v"],
        input=images[0],
        capture_output=True,
        check=True,
    ).stdout.decode()
    entries = {line.split()[-1]: line.split()[:2] for line in listing.splitlines()}
    assert entries["dev/console"] == ["crw-------", "0/0"]
    assert entries["init"] == ["-rwxr-xr-x", "0/0"]
    assert entries["bin/busybox"] == ["-rwxr-xr-x", "0/0"]
    assert entries["tests/suite/lib/helper"] == ["-rwxr-xr-x", "0/0"]
    assert entries["tests/suite/tap.sh"] == ["-rw-r--r--", "0/0"]
    assert "tests/suite/link -> tap.sh" in listing
    assert not [name for name in entries if ".git" in name]
    assert all(" 1970-01-01 00:00:00 " in line for line in listing.splitlines())


def test_payload_paths_must_stay_inside_the_tests_dir(tests_dir: Path) -> None:
    with pytest.raises(ConfigError, match="not inside tests_dir"):
        payload_entries(str(tests_dir), ["../elsewhere"])
    (tests_dir / "etc").symlink_to("/etc")
    with pytest.raises(ConfigError, match="leads out of tests_dir through a symlink"):
        payload_entries(str(tests_dir), ["etc/passwd"])
    assert payload_entries(str(tests_dir), ["etc"]) == [("tests/etc", str(tests_dir / "etc"))]
    assert payload_entries(str(tests_dir), ["suite/tap.sh"]) == [
        ("tests/suite/tap.sh", str(tests_dir / "suite/tap.sh"))
    ]


def test_config_is_checked_before_anything_happens() -> None:
    with pytest.raises(
        ConfigError, match=r"has unknown keys \['memory'\] and missing keys \['command'\]"
    ):
        load_config([json.dumps({"kernel": "k", "tests_dir": "t", "output_dir": "o", "memory": 1})])
    with pytest.raises(ConfigError, match="'cpus' must be int"):
        load_config(
            [
                json.dumps(
                    {
                        "kernel": "k",
                        "tests_dir": "t",
                        "output_dir": "o",
                        "command": "c",
                        "cpus": "2",
                    }
                )
            ]
        )
    status, output = run_vmrun({"kernel": "k"})
    assert status == 2
    assert event_kinds(output) == ["config-error"]


def test_the_shipped_program_is_python_3_9_and_fits_one_argument() -> None:
    package = resources.files("reconciler.adapters.vm.vmrun")
    for name in SHIPPED_MODULES:
        ast.parse((package / f"{name}.py").read_text(), feature_version=(3, 9))
    # Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN).
    assert len(vmrun_program().encode()) < 128 * 1024


# --- real boots --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tap_batch_boots_runs_and_exits(kernel: Path, tests_dir: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    config = vm_config(
        kernel=kernel,
        tests_dir=tests_dir,
        output_dir=output_dir,
        command="sh suite/tap.sh a fail-b skip-c",
        subtests=["a", "fail-b", "skip-c"],
        scratch_disks=["16M"],
    )
    status, output = run_vmrun(config)
    assert status == 0, output
    assert transcript(output).test_lines == (
        "TAP version 13",
        "1..3",
        "ok 1 - a",
        "not ok 2 - fail-b",
        "ok 3 - skip-c # SKIP not here",
    )
    assert event_kinds(output) == ["start", "ready", "guest-exit", "vm-exit"]
    start, _, guest_exit, vm_exit = events(output)
    assert start.fields["accel"] in {"kvm", "tcg"}
    assert start.fields["subtests"] == ["a", "fail-b", "skip-c"]
    assert guest_exit.fields == {"status": 0}
    assert vm_exit.fields["reason"] == "finished"
    assert "[console] Run /init as init process" in output.splitlines()
    # The scratch disk is gone; the initramfs stays for whoever wants to boot it again.
    assert sorted(path.name for path in output_dir.iterdir()) == ["initramfs.cpio"]


@pytest.mark.slow
def test_a_hung_subtest_fires_the_watchdog(kernel: Path, tests_dir: Path, tmp_path: Path) -> None:
    config = vm_config(
        kernel=kernel,
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        command="sh suite/tap.sh a hang-b c",
        subtests=["a", "hang-b", "c"],
        subtest_timeout=3,
    )
    status, output = run_vmrun(config)
    assert status == 1
    assert transcript(output).test_lines[-1] == "ok 1 - a"
    watchdog = transcript(output).first("watchdog")
    assert watchdog is not None
    assert watchdog.fields == {"phase": "test", "subtest": "hang-b", "seconds": 3.0}
    assert event_kinds(output)[-1] == "vm-exit"
    assert events(output)[-1].fields["reason"] == "watchdog"
    assert qemu_pids(str(tmp_path / "out")) == []


@pytest.mark.slow
def test_a_panic_at_boot_is_charged_to_no_subtest(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    # With an rdinit that does not exist the kernel falls back to mounting a root device it
    # does not have, and panics before any user space runs.
    config = vm_config(
        kernel=kernel,
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        command="sh suite/tap.sh a",
        subtests=["a"],
        kernel_cmdline="rdinit=/nonexistent",
    )
    status, output = run_vmrun(config)
    assert status == 1
    assert event_kinds(output) == ["start", "kernel-error", "vm-exit"]
    error, vm_exit = events(output)[1:]
    assert error.fields == {
        "kind": "panic",
        "line": "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
        "subtest": None,
        "boot": True,
    }
    assert vm_exit.fields["reason"] == "kernel-panic"


@pytest.mark.slow
def test_a_panic_during_a_subtest_is_charged_to_it(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    config = vm_config(
        kernel=kernel,
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        command="sh suite/oom.sh",
        subtests=["before", "exhaust-memory"],
    )
    status, output = run_vmrun(config)
    assert status == 1
    errors = transcript(output).of_kind("kernel-error")
    assert [(e.text("kind"), e.text("subtest")) for e in errors] == [("panic", "exhaust-memory")]
    assert errors[0].text("line") == (
        "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled"
    )
    assert events(output)[-1].fields["reason"] == "kernel-panic"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"qemu": "qemu-system-nowhere"}, "qemu-system-nowhere is not installed on this worker"),
        ({"kernel": "/nonexistent/bzImage"}, "cannot read the kernel image /nonexistent/bzImage"),
        ({"busybox": "/bin/sh"}, "/bin/sh is dynamically linked: it cannot run in the VM"),
        ({"qemu_args": ["-no-such-option"]}, "QEMU exited with status 1"),
    ],
)
def test_what_the_worker_lacks_is_an_infrastructure_error(
    kernel: Path, tests_dir: Path, tmp_path: Path, override: dict[str, object], message: str
) -> None:
    config = vm_config(
        kernel=kernel,
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        command="sh suite/tap.sh a",
        subtests=["a"],
    )
    status, output = run_vmrun({**config, **override})
    assert status == 3
    error = transcript(output).first("infra-error")
    assert error is not None
    assert (error.text("message") or "").startswith(message)
    assert error.text("hint")
    if "qemu_args" in override:
        assert "-no-such-option" in (error.text("message") or "")
        assert event_kinds(output) == ["start", "vm-exit", "infra-error"]


def start_hung_batch(kernel: Path, tests_dir: Path, output_dir: Path) -> subprocess.Popen[bytes]:
    config = vm_config(
        kernel=kernel,
        tests_dir=tests_dir,
        output_dir=output_dir,
        command="sh suite/tap.sh hang-a",
        subtests=["hang-a"],
    )
    process = subprocess.Popen(
        ["sh", "-c", "exec " + vmrun_command(config)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    read_until_event(process.stdout, "ready")
    assert len(qemu_pids(str(output_dir))) == 1
    return process


@pytest.mark.slow
def test_sigkill_of_vmrun_leaves_no_qemu(kernel: Path, tests_dir: Path, tmp_path: Path) -> None:
    marker = str(tmp_path / "out")
    with start_hung_batch(kernel, tests_dir, tmp_path / "out") as process:
        try:
            process.kill()
            process.wait()
            assert wait_until_gone(marker, seconds=5) == []
        finally:
            for pid in qemu_pids(marker):
                kill_quietly(pid)


@pytest.mark.slow
def test_sigterm_stops_the_vm_and_says_so(kernel: Path, tests_dir: Path, tmp_path: Path) -> None:
    marker = str(tmp_path / "out")
    with start_hung_batch(kernel, tests_dir, tmp_path / "out") as process:
        try:
            process.send_signal(signal.SIGTERM)
            rest, _ = process.communicate(timeout=10)
            assert process.returncode == 128 + signal.SIGTERM
            assert rest.decode().splitlines()[-1] == '[vmrun] stopped {"signal": "SIGTERM"}'
            assert qemu_pids(marker) == []
        finally:
            for pid in qemu_pids(marker):
                kill_quietly(pid)


READER = """\
import subprocess, sys
child = subprocess.Popen(["sh", "-c", sys.argv[1]], stdout=subprocess.PIPE)
for line in child.stdout:
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
"""


@pytest.mark.slow
def test_a_killed_reader_makes_vmrun_stop_qemu(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    """The reconciler SIGKILLed mid-batch: vmrun's stdout has no reader any more."""
    marker = str(tmp_path / "out")
    config = vm_config(
        kernel=kernel,
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        command="sh suite/tap.sh hang-a",
        subtests=["hang-a"],
    )
    with subprocess.Popen(
        [sys.executable, "-c", READER, vmrun_command(config)], stdout=subprocess.PIPE
    ) as reader:
        try:
            assert reader.stdout is not None
            read_until_event(reader.stdout, "ready")
            assert len(qemu_pids(marker)) == 1
            os.kill(reader.pid, signal.SIGKILL)
            reader.wait()
            assert wait_until_gone(marker, seconds=5) == []
        finally:
            for pid in qemu_pids(marker):
                kill_quietly(pid)
