"""Reading the VM's two channels as they stream: which subtest runs, kernel errors, watchdog.

Why it is apart from the I/O: every decision vmrun takes about a run (whom a kernel Oops is
charged to, when the watchdog fires, whether the guest finished) is taken here from lines and
a `now` passed in, so tests drive it with real console text and an exact clock, and `main`
only moves bytes.

The running subtest is the first expected one without a result line. A kernel error is
charged to it; before the guest said `ready` it is a boot error, charged to every subtest by
the reader. Lines are dispatched console first within one read, so an Oops is charged before
the `not ok` line it provokes in the test's output is read.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .guest import GUEST_MARKER

TAG_EVENT, TAG_CONSOLE, TAG_QEMU, TAG_TEST = "[vmrun] ", "[console] ", "[qemu] ", "[test] "
SHUTDOWN_GRACE = 10.0
"""Seconds the guest gets to reboot after its command ended, before QEMU is killed."""
KERNEL_ERROR_EVENTS_PER_SUBTEST = 10
"""A WARN in a loop must not flood the output: later ones stay on the console only."""

# A printk time stamp and caller id may precede a line; each pattern is matched at its start.
_STAMP = r"(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[CT]\d+\]\s*)?"
_LOCKDEP = (
    r"WARNING: (?:possible (?:circular|recursive|irq lock inversion)|inconsistent lock state"
    r"|suspicious RCU usage|bad unlock balance|held lock freed|Nested lock was not taken"
    r"|lock held when returning to user space)"
)
KERNEL_ERRORS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(_STAMP + pattern))
    for kind, pattern in (
        ("panic", r"Kernel panic - not syncing\b"),
        ("bug", r"(?:kernel BUG at |BUG: )"),
        ("oops", r"(?:Internal error: )?Oops\b"),
        ("general-protection-fault", r"general protection fault\b"),
        ("lockdep", _LOCKDEP),
        ("warning", r"WARNING: (?:CPU: \d+ PID: |\S+:\d+ at )"),
        ("hung-task", r"INFO: task \S+ blocked for more than \d+ seconds"),
        ("rcu-stall", r"rcu: INFO: \S+ (?:self-)?detected stalls?"),
        ("ubsan", r"UBSAN: "),
    )
)
"""Kernel console lines that mean the kernel misbehaved, first match wins (kind, pattern)."""
FATAL_KERNEL_ERRORS = frozenset({"panic"})

_TAP_RESULT = re.compile(
    r"(?:not ok|ok)(?=\s|$)\s*(?:\d+)?\s*(?:-\s*)?(?P<name>(?:[^#\\]|\\.)*)(?:#.*)?"
)
_KTEST_RESULT = re.compile(
    r"(?:\d{5,} )?(?:\[\s*\d+\.\d+\] ?)?========= (?:PASSED|FAILED|NOTRUN|FAILED TIMEOUT)"
    r" (?P<name>\S+) in \d+s.*"
)


def event_line(name: str, /, **fields: Any) -> str:
    return f"{TAG_EVENT}{name} {json.dumps(fields, sort_keys=True)}"


def kernel_error_kind(line: str) -> str | None:
    for kind, pattern in KERNEL_ERRORS:
        if pattern.match(line):
            return kind
    return None


def result_name(line: str, *, output: str) -> str | None:
    """The subtest a test-channel line reports a result for ("" when unnamed), or None."""
    match = (_KTEST_RESULT if output == "ktest" else _TAP_RESULT).fullmatch(line.rstrip())
    if match is None:
        return None
    return re.sub(r"\\(.)", r"\1", match["name"].strip())


class Supervisor:
    """What the VM's output means so far. Each method returns the lines to write to stdout."""

    def __init__(
        self,
        *,
        subtests: list[str],
        output: str,
        subtest_timeout: float,
        boot_timeout: float,
        batch_timeout: float | None,
        started: float,
    ) -> None:
        self.expected = list(subtests)
        self.pending = list(subtests)
        self.output = output
        self.subtest_timeout = subtest_timeout
        self.boot_timeout = boot_timeout
        self.batch_timeout = batch_timeout
        self.started = self.last_progress = started
        self.ready_at: float | None = None
        self.guest_exit_at: float | None = None
        self.fatal_at: float | None = None
        """When a kernel panic was seen: the VM is going down on its own."""
        self.stop_reason: str | None = None
        """Set when vmrun must kill the VM: `watchdog`, `batch-timeout`, `kernel-panic`,
        `finished`."""
        self._errors_per_subtest: dict[str | None, int] = {}

    @property
    def running(self) -> str | None:
        return self.pending[0] if self.ready_at is not None and self.pending else None

    def test_line(self, line: str, now: float) -> list[str]:
        text, marker = _split_marker(line)
        lines: list[str] = []
        if text:
            escape = text.startswith((TAG_EVENT, TAG_CONSOLE, TAG_QEMU, TAG_TEST))
            lines.append(TAG_TEST + text if escape else text)
            name = result_name(text, output=self.output) if self.ready_at is not None else None
            if name is not None:
                self.last_progress = now
                if name in self.pending:
                    self.pending.remove(name)
                elif name not in self.expected and self.pending:
                    self.pending.pop(0)
        return lines + self._marker(marker, now)

    def console_line(self, line: str, now: float) -> list[str]:
        text, marker = _split_marker(line)
        lines = [TAG_CONSOLE + line]
        kind = kernel_error_kind(text)
        if kind is not None:
            subtest = self.running
            count = self._errors_per_subtest.get(subtest, 0)
            self._errors_per_subtest[subtest] = count + 1
            if kind in FATAL_KERNEL_ERRORS and self.fatal_at is None:
                self.fatal_at = now
            if kind in FATAL_KERNEL_ERRORS or count < KERNEL_ERROR_EVENTS_PER_SUBTEST:
                boot = self.ready_at is None
                fields = {"kind": kind, "line": text, "subtest": subtest, "boot": boot}
                lines.append(event_line("kernel-error", **fields))
        return lines + self._marker(marker, now)

    def tick(self, now: float) -> list[str]:
        """The watchdog and the batch timeout: events that stop the VM."""
        if self.stop_reason is not None:
            return []
        # A panicking kernel reboots (panic=-1), and a finished guest reboots too, which ends
        # QEMU (-no-reboot); one that hangs instead is stopped after a grace period.
        for reason, since in (("kernel-panic", self.fatal_at), ("finished", self.guest_exit_at)):
            if since is not None:
                if now - since > SHUTDOWN_GRACE:
                    self.stop_reason = reason
                return []
        if self.batch_timeout is not None and now - self.started > self.batch_timeout:
            self.stop_reason = "batch-timeout"
            return [event_line("batch-timeout", subtest=self.running, seconds=self.batch_timeout)]
        if self.ready_at is None:
            phase, limit = "boot", self.boot_timeout
        else:
            phase, limit = "test", self.subtest_timeout
        if now - self.last_progress > limit:
            self.stop_reason = "watchdog"
            return [event_line("watchdog", phase=phase, subtest=self.running, seconds=limit)]
        return []

    def _marker(self, marker: str | None, now: float) -> list[str]:
        if marker is None:
            return []
        word, _, rest = marker.partition(" ")
        if word == "ready" and self.ready_at is None:
            self.ready_at = self.last_progress = now
            return [event_line("ready", seconds=round(now - self.started, 3))]
        if word == "exit" and self.guest_exit_at is None and rest.strip().isdigit():
            self.guest_exit_at = now
            return [event_line("guest-exit", status=int(rest))]
        if word == "error":
            return [event_line("guest-error", message=rest)]
        return []


def _split_marker(line: str) -> tuple[str, str | None]:
    # The guest's marker may follow a test's last output when that lacked a newline.
    index = line.find(GUEST_MARKER)
    if index < 0:
        return line, None
    return line[:index], line[index + len(GUEST_MARKER) :].strip()
