"""vmrun's stdout read back on the reconciler's side: test lines, console lines and events.

vmrun (see `reconciler.adapters.vm.vmrun`) writes the guest's test channel verbatim and tags
everything else, so splitting its output is a matter of prefixes: `[vmrun] <event> <JSON>`,
`[console] ...` and `[qemu] ...` lines are its own, `[test] ...` is an escaped test line, and
any other line is the test's. The test lines alone go to the TAP or ktest parser, so a kernel
message can never be read as a test point. The events say what the output alone cannot: which
subtest a kernel error or the watchdog hit, whether the guest booted, why the VM ended.

This module only reads; what the events mean for a subtest's verdict is the harness's call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.adapters.vm.vmrun.watch import TAG_CONSOLE, TAG_EVENT, TAG_QEMU, TAG_TEST


@dataclass(frozen=True)
class VmEvent:
    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def text(self, key: str) -> str | None:
        value = self.fields.get(key)
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class VmTranscript:
    """One vmrun output, split by channel."""

    test_lines: tuple[str, ...]
    console_lines: tuple[str, ...]
    events: tuple[VmEvent, ...]

    @property
    def test_output(self) -> str:
        return "\n".join(self.test_lines)

    @property
    def subtests(self) -> tuple[str, ...]:
        """The subtests vmrun was told to expect (from its `start` event)."""
        start = self.first("start")
        names = start.fields.get("subtests") if start else None
        return tuple(str(name) for name in names) if isinstance(names, list) else ()

    def of_kind(self, kind: str) -> list[VmEvent]:
        return [event for event in self.events if event.kind == kind]

    def first(self, kind: str) -> VmEvent | None:
        return next((event for event in self.events if event.kind == kind), None)


def read_transcript(output: str) -> VmTranscript:
    test_lines: list[str] = []
    console_lines: list[str] = []
    events: list[VmEvent] = []
    for line in output.splitlines():
        if line.startswith(TAG_EVENT):
            event = parse_event(line[len(TAG_EVENT) :])
            if event is not None:
                events.append(event)
        elif line.startswith(TAG_CONSOLE):
            console_lines.append(line[len(TAG_CONSOLE) :])
        elif line.startswith(TAG_QEMU):
            continue  # QEMU's own chatter: in the stored log, meaningless to a verdict
        elif line.startswith(TAG_TEST):
            test_lines.append(line[len(TAG_TEST) :])
        else:
            test_lines.append(line)
    return VmTranscript(tuple(test_lines), tuple(console_lines), tuple(events))


def parse_event(text: str) -> VmEvent | None:
    """`<kind> <JSON object>`, or None when the line is cut short or malformed."""
    kind, _, body = text.partition(" ")
    try:
        fields = json.loads(body)
    except ValueError:
        return None
    return VmEvent(kind, fields) if kind and isinstance(fields, dict) else None


def events_by_subtest(events: Sequence[VmEvent]) -> dict[str, VmEvent]:
    """The first of `events` naming each subtest."""
    found: dict[str, VmEvent] = {}
    for event in events:
        subtest = event.text("subtest")
        if subtest is not None:
            found.setdefault(subtest, event)
    return found
