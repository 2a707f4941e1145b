"""Shared by the VM tests: test scripts for the guest, running vmrun, finding its QEMU.

A VM test boots `kernel_tree.vm_kernel()` (tinyconfig, serial console, virtio-blk, ext2; no
tmpfs, no ACPI, no magic SysRq) under QEMU. Whether a QEMU survives is read from /proc, never
assumed from a sleep: a process is alive while /proc/<pid> exists and is not a zombie.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.adapters.vm.console import VmEvent, VmTranscript, read_transcript
from reconciler.adapters.vm.program import vmrun_command

TAP_SCRIPT = """\
# One TAP test point per subtest named on the command line: `fail-*` fails, `skip-*` skips,
# `hang-*` never ends, `warn-*` makes the kernel print a WARNING first, anything else passes.
if [ "$1" = --list ]; then
    printf '%s\n' a fail-b skip-c
    exit 0
fi
echo "TAP version 13"
echo "1..$#"
n=0
for name in "$@"; do
    n=$((n + 1))
    case $name in
    fail-*) echo "not ok $n - $name" ;;
    skip-*) echo "ok $n - $name # SKIP not here" ;;
    hang-*) sleep 1000 ;;
    warn-*) echo "WARNING: CPU: 0 PID: 1 at fs/fake.c:1 fake+0x0/0x10" > /dev/kmsg
            echo "ok $n - $name" ;;
    *) echo "ok $n - $name" ;;
    esac
done
"""
EXT2_SCRIPT = """\
# A filesystem round trip on the first scratch disk.
set -e
echo "1..1"
mke2fs -q /dev/vda
mkdir -p /mnt/scratch
mount -t ext2 /dev/vda /mnt/scratch
echo "written in the guest" > /mnt/scratch/file
umount /mnt/scratch
mount -t ext2 -o ro /dev/vda /mnt/scratch
if [ "$(cat /mnt/scratch/file)" = "written in the guest" ]; then
    echo "ok 1 - ext2-roundtrip"
else
    echo "not ok 1 - ext2-roundtrip"
fi
"""
KTEST_SCRIPT = """\
# ktest's console lines, as its run_tests prints them.
for name in "$@"; do
    case $name in
    fail-*) echo "========= FAILED $name in 0s" ;;
    skip-*) echo "========= NOTRUN $name in 0s: not supported here" ;;
    *) echo "========= PASSED $name in 1s" ;;
    esac
done
"""
OOM_SCRIPT = """\
# Real kernel panic in the second subtest: memory exhausted with panic_on_oom set.
echo "1..2"
echo "ok 1 - before"
echo 1 > /proc/sys/vm/panic_on_oom
dd if=/dev/zero of=/fill bs=1M
echo "ok 2 - exhaust-memory"
"""


def write_tests(root: Path) -> Path:
    """A tests directory holding every script above, under `suite/`."""
    suite = root / "suite"
    suite.mkdir(parents=True)
    for name, text in {
        "tap.sh": TAP_SCRIPT,
        "ext2.sh": EXT2_SCRIPT,
        "ktest.sh": KTEST_SCRIPT,
        "oom.sh": OOM_SCRIPT,
    }.items():
        (suite / name).write_text(text)
    return root


def vm_config(*, kernel: Path, tests_dir: Path, output_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "kernel": str(kernel),
        "tests_dir": str(tests_dir),
        "output_dir": str(output_dir),
        "payload": ["suite"],
        "subtest_timeout": 30,
        "boot_timeout": 60,
        **extra,
    }


def run_vmrun(config: Mapping[str, Any], *, timeout: float = 90) -> tuple[int, str]:
    """Exit status and stdout of vmrun run as a worker runs it: `sh -c <command>`."""
    completed = subprocess.run(
        ["sh", "-c", vmrun_command(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    return completed.returncode, completed.stdout.decode()


def events(output: str) -> list[VmEvent]:
    return list(read_transcript(output).events)


def transcript(output: str) -> VmTranscript:
    return read_transcript(output)


def event_kinds(output: str) -> list[str]:
    return [event.kind for event in events(output)]


def qemu_pids(marker: str) -> list[int]:
    """Live QEMU processes whose command line mentions `marker` (a batch's output dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone while we looked
        if state != "Z" and b"qemu-system" in argv[0] and any(marker.encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def wait_until_gone(marker: str, *, seconds: float) -> list[int]:
    """Polls /proc until no QEMU of `marker` is alive or `seconds` pass; the survivors."""
    deadline = time.monotonic() + seconds
    while (alive := qemu_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def read_until_event(stream: Any, kind: str, *, seconds: float = 60) -> list[str]:
    """Lines of a running vmrun's stdout up to and including its first `kind` event."""
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = stream.readline().decode()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(f"[vmrun] {kind} "):
            return lines
    raise AssertionError(f"no {kind} event in: {json.dumps(lines[-20:], indent=1)}")


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
