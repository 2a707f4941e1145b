"""vmrun reading the VM's output, at its seam: kernel console text in the formats real kernels
print, test-channel result lines, and the watchdog driven by an exact clock.

The Supervisor takes every decision vmrun makes about a run from lines and a `now` passed in,
so these tests need no VM; `test_vm_runner` checks the same decisions on real boots.
"""

from __future__ import annotations

import pytest

from reconciler.adapters.vm.vmrun.watch import Supervisor, kernel_error_kind, result_name

OOPS = """\
BUG: kernel NULL pointer dereference, address: 0000000000000008
#PF: supervisor read access in kernel mode
#PF: error_code(0x0000) - not-present page
PGD 0 P4D 0
Oops: 0000 [#1] PREEMPT SMP NOPTI
CPU: 0 PID: 87 Comm: sh Not tainted 6.1.0 #1
RIP: 0010:ext2_readdir+0x2a/0x300"""
LOCKDEP = """\
======================================================
WARNING: possible circular locking dependency detected
6.1.0 #1 Not tainted
------------------------------------------------------"""


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("Kernel panic - not syncing: No working init found.", "panic"),
        ("[   12.345678] Kernel panic - not syncing: Fatal exception", "panic"),
        ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "bug"),
        ("kernel BUG at fs/ext2/inode.c:1234!", "bug"),
        ("[    3.000000][  T123] BUG: sleeping function called from invalid context", "bug"),
        ("Oops: 0000 [#1] PREEMPT SMP NOPTI", "oops"),
        ("Internal error: Oops: 96000005 [#1] SMP", "oops"),
        (
            "general protection fault, probably for non-canonical address 0xdead: 0000 [#1]",
            "general-protection-fault",
        ),
        ("WARNING: possible circular locking dependency detected", "lockdep"),
        ("WARNING: possible recursive locking detected", "lockdep"),
        ("WARNING: inconsistent lock state", "lockdep"),
        ("WARNING: CPU: 0 PID: 1 at fs/ext2/super.c:10 ext2_fill_super+0x1/0x2", "warning"),
        ("INFO: task sh:87 blocked for more than 120 seconds.", "hung-task"),
        ("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", "rcu-stall"),
        ("UBSAN: shift-out-of-bounds in fs/ext2/balloc.c:42:7", "ubsan"),
        ("ok 1 - BUG: in the name of a test", None),
        ("WARNING: this is not a kernel splat", None),
        ("BUGS: none", None),
        ("  Kernel panic - not syncing: indented means quoted", None),
    ],
)
def test_kernel_error_lines(line: str, kind: str | None) -> None:
    assert kernel_error_kind(line) == kind


@pytest.mark.parametrize(
    ("line", "output", "name"),
    [
        ("ok 1 - first", "tap", "first"),
        ("not ok 2 second # TODO later", "tap", "second"),
        ("ok 3 - has \\# hash # SKIP why", "tap", "has # hash"),
        ("ok 4", "tap", ""),
        ("okay 5 - not a test point", "tap", None),
        ("    ok 1 - nested child", "tap", None),
        ("========= PASSED first in 3s", "ktest", "first"),
        ("00012 ========= FAILED TIMEOUT second in 30s", "ktest", "second"),
        ("========= NOTRUN third in 0s: needs nvme", "ktest", "third"),
        ("ok 1 - first", "ktest", None),
    ],
)
def test_result_lines(line: str, output: str, name: str | None) -> None:
    assert result_name(line, output=output) == name


def supervisor(*, batch_timeout: float | None = None) -> Supervisor:
    """Three subtests, 5 s each, 20 s to boot, started at t=100."""
    return Supervisor(
        subtests=["a", "b", "c"],
        output="tap",
        subtest_timeout=5.0,
        boot_timeout=20.0,
        batch_timeout=batch_timeout,
        started=100.0,
    )


def test_kernel_errors_are_charged_to_the_running_subtest() -> None:
    watch = supervisor()
    out = watch.console_line("WARNING: CPU: 0 PID: 1 at init/main.c:1 boot+0x0/0x1", 100.5)
    out += watch.test_line("@@vmrun-guest@@ ready", 101.0)
    for line in OOPS.splitlines():
        out += watch.console_line(line, 102.0)
    out += watch.test_line("not ok 1 - a", 102.0)
    for line in LOCKDEP.splitlines():
        out += watch.console_line(line, 103.0)
    out += watch.test_line("ok 2 - b", 103.5)
    out += watch.test_line("[vmrun] start {} from a test", 103.6)
    out += watch.test_line("ok 3 - c@@vmrun-guest@@ exit 0", 104.0)
    assert [line for line in out if not line.startswith("[console] ")] == [
        '[vmrun] kernel-error {"boot": true, "kind": "warning", "line": "WARNING: CPU: 0 PID: 1'
        ' at init/main.c:1 boot+0x0/0x1", "subtest": null}',
        '[vmrun] ready {"seconds": 1.0}',
        '[vmrun] kernel-error {"boot": false, "kind": "bug", "line": "BUG: kernel NULL pointer'
        ' dereference, address: 0000000000000008", "subtest": "a"}',
        '[vmrun] kernel-error {"boot": false, "kind": "oops", "line": "Oops: 0000 [#1] PREEMPT'
        ' SMP NOPTI", "subtest": "a"}',
        "not ok 1 - a",
        '[vmrun] kernel-error {"boot": false, "kind": "lockdep", "line": "WARNING: possible'
        ' circular locking dependency detected", "subtest": "b"}',
        "ok 2 - b",
        "[test] [vmrun] start {} from a test",
        "ok 3 - c",
        '[vmrun] guest-exit {"status": 0}',
    ]
    assert watch.tick(114.0) == []  # the guest has 10 s to reboot after its command
    assert watch.stop_reason is None
    assert watch.tick(114.1) == []
    assert watch.stop_reason == "finished"


def test_the_watchdog_fires_for_the_running_subtest_to_the_second() -> None:
    watch = supervisor()
    assert watch.tick(120.0) == []
    watch.test_line("@@vmrun-guest@@ ready", 101.0)
    watch.test_line("ok 1 - a", 104.0)
    assert watch.tick(109.0) == []
    assert watch.tick(109.01) == [
        '[vmrun] watchdog {"phase": "test", "seconds": 5.0, "subtest": "b"}'
    ]
    assert watch.stop_reason == "watchdog"
    assert watch.tick(200.0) == []  # fires once


def test_the_boot_and_the_batch_have_their_own_limits() -> None:
    booting = supervisor()
    assert booting.tick(120.0) == []
    assert booting.tick(120.5) == [
        '[vmrun] watchdog {"phase": "boot", "seconds": 20.0, "subtest": null}'
    ]
    batch = supervisor(batch_timeout=8.0)
    batch.test_line("@@vmrun-guest@@ ready", 101.0)
    batch.test_line("ok 1 - a", 104.0)
    batch.test_line("ok - an unnamed extra finishes the first pending one", 107.0)
    assert batch.tick(108.5) == ['[vmrun] batch-timeout {"seconds": 8.0, "subtest": "c"}']


def test_a_panic_that_does_not_reboot_is_stopped() -> None:
    watch = supervisor()
    watch.test_line("@@vmrun-guest@@ ready", 101.0)
    watch.console_line("Kernel panic - not syncing: Fatal exception", 102.0)
    assert watch.tick(111.0) == []  # no watchdog: the kernel is going down on its own
    watch.tick(112.5)
    assert watch.stop_reason == "kernel-panic"
