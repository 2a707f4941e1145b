"""Nothing the local executor started survives the reconciler (issue 11, item 13).

A process that runs a LocalHost command (which starts children of its own in the background)
is killed with SIGKILL; every process of the command's tree must be gone shortly after, not
reparented to init and left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRIVER = """\
import asyncio, sys
from pathlib import Path
from reconciler.adapters.executors.local import LocalHost
host = LocalHost(workdir=Path(sys.argv[1]), slots=1, kill_grace=0.5)
seconds = sys.argv[2]
command = f"sleep {seconds} & sh -c 'sleep {seconds}; true' & echo started; wait"
asyncio.run(host.run(command, on_line=lambda line: print(line, flush=True)))
"""


def survivors(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_killed_reconciler_leaves_no_command_running(tmp_path: Path) -> None:
    # A sleep long enough never to end by itself, and a duration no other process has: the
    # marker each process of the tree carries in its command line.
    marker = f"9999.{os.getpid()}{time.monotonic_ns() % 10**6:06d}"
    with subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path / "work"), marker],
        stdout=subprocess.PIPE,
        text=True,
    ) as driver:
        try:
            assert driver.stdout is not None
            assert driver.stdout.readline().strip() == "started"
            deadline = time.monotonic() + 10
            while len(survivors(marker)) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            # The driver, the command's sh, both sleeps and the sh running one of them (and,
            # once fixed, the supervisor): every one of them carries the marker.
            assert len(survivors(marker)) >= 4
            driver.send_signal(signal.SIGKILL)
            driver.wait(timeout=10)
            deadline = time.monotonic() + 10
            while survivors(marker) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert survivors(marker) == []
        finally:
            for pid in survivors(marker):
                os.kill(pid, signal.SIGKILL)
            driver.kill()
