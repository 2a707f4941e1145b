"""The `vm` harness: tests run inside a VM booted from the built kernel, one VM per batch.

The `kbuild` recipe builds the kernel (so `build_command` is None); each batch then runs
`vmrun` on its worker (`reconciler.adapters.vm`), which boots that kernel under QEMU with a
busybox initramfs carrying the tests and runs the harness's `run` command in it (default
`sh {test} {subtests}`, with `{test}` and `{subtests}` shell-quoted) by busybox `sh`, in the
tests directory. The payload is the whole harness checkout when the harness has a `url`, else
the test file's directory in the source tree (only the file when it sits at the top).
Enumeration is the `command` harness's: a `list` command run in a checkout on the reconciler
host, cached by content, or explicit `subtests`.

Verdicts come from the test's own TAP or ktest lines, corrected by what the kernel said:
- a kernel error (panic, Oops, BUG, lockdep, WARNING, ...) while a subtest ran fails it with
  the kernel's line as message, whatever its own line says; one before the guest booted fails
  every subtest (a kernel that panics at boot fails the batch); the console log is the log;
- vmrun's watchdog firing while a subtest ran makes it `timeout`;
- an expected subtest with no line is `error` "not reached", so the batch runner runs it again
  in a fresh batch: never a pass;
- QEMU that cannot start is infrastructure (`VmInfrastructureError`), not a verdict.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import (
    BatchContext,
    SubtestOutcome,
    outcomes_for_expected,
    substitute,
)
from reconciler.adapters.harness.command import parse_ktest_console
from reconciler.adapters.harness.enumeration_cache import EnumerationCache
from reconciler.adapters.harness.listing import enumerate_by_list_command
from reconciler.adapters.harness.tap import parse_tap
from reconciler.adapters.vm.console import (
    VmEvent,
    VmTranscript,
    events_by_subtest,
    read_transcript,
)
from reconciler.adapters.vm.program import vmrun_command
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError, InfrastructureError
from reconciler.model.results import Status
from reconciler.model.specs import Harness, OutputFormat, TestGroup

DEFAULT_RUN = "sh {test} {subtests}"
DEFAULT_MEM = "256M"
BOOT_TIMEOUT_SECONDS = 120
"""How long the guest may take to boot before vmrun's watchdog gives up (TCG is slow)."""

_PARSERS = {OutputFormat.TAP: parse_tap, OutputFormat.KTEST: parse_ktest_console}
_EXIT_REASONS = {
    "watchdog": "vmrun's watchdog stopped the VM",
    "batch-timeout": "the batch hit its time limit",
    "kernel-panic": "the kernel panicked",
    "unexpected-exit": "the VM exited without finishing the command",
    "finished": "the command ended without reporting it",
}


class VmInfrastructureError(InfrastructureError):
    """QEMU, busybox or the kernel image is missing or broken on the worker."""


class VmHarness:
    """Boots the built kernel per batch and runs the harness's command inside the VM."""

    setup_seconds: float = float(BOOT_TIMEOUT_SECONDS)
    """Booting the VM; vmrun then watches each subtest with its own timeout."""

    def __init__(self, harness: Harness, *, cache: EnumerationCache) -> None:
        if harness.output not in _PARSERS:
            raise HarnessError(
                f"a vm harness reads `tap` or `ktest` output, not {harness.output.value!r}",
                where=f"harness {harness.name!r}",
                hint="print TAP or ktest `========= PASSED name in 1s` lines from the test",
            )
        self.harness = harness
        self._run = harness.run or DEFAULT_RUN
        self._parse = _PARSERS[harness.output]
        self._cache = cache

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        return enumerate_by_list_command(self.harness, cache=self._cache, group=group, tree=tree)

    def build_command(self) -> str | None:
        return None  # the kbuild recipe builds the kernel

    def batch_command(self, context: BatchContext) -> str:
        if context.kernel_image is None:
            raise HarnessError(
                f"the vm harness boots the built kernel, but the build of {context.test!r} left"
                " no kernel image",
                where=f"harness {self.harness.name!r}",
                hint="build with the `kbuild` recipe, which records the boot image",
            )
        runtime = context.runtime
        command = substitute(
            self._run,
            {
                "test": shlex.quote(context.test),
                "subtests": " ".join(shlex.quote(subtest) for subtest in context.subtests),
            },
        )
        config: dict[str, Any] = {
            "kernel": context.kernel_image,
            "tests_dir": context.tests_dir,
            "output_dir": context.output_dir,
            "command": command,
            "payload": self.payload(context.test),
            "subtests": list(context.subtests),
            "output": self.harness.output.value,
            "env": {str(k): str(v) for k, v in dict(runtime.get("env") or {}).items()},
            "subtest_timeout": context.timeout,
            "boot_timeout": BOOT_TIMEOUT_SECONDS,
            "batch_timeout": context.timeout * len(context.subtests) + BOOT_TIMEOUT_SECONDS,
            "mem": str(runtime.get("mem") or DEFAULT_MEM),
            "cpus": int(runtime.get("cpus") or 1),
            "kernel_cmdline": str(runtime.get("kernel_cmdline") or ""),
            "qemu_args": [str(argument) for argument in runtime.get("qemu_args") or ()],
            "scratch_disks": [str(size) for size in runtime.get("scratch_disks") or ()],
        }
        return vmrun_command(config)

    def payload(self, test: str) -> list[str]:
        """What of the tests directory goes into the VM."""
        if self.harness.url:
            return ["."]
        return [posixpath.dirname(test) or test]

    def result_files(self, context: BatchContext) -> tuple[str, ...]:
        return ()  # every verdict is on vmrun's stdout

    def reported(self, *, output: str) -> list[SubtestOutcome]:
        transcript = read_transcript(output)
        over = transcript.first("vm-exit") is not None
        return [o for o in self._outcomes(transcript, final=over) if o.status is not Status.ERROR]

    def parse_results(
        self, *, output: str, files: Mapping[str, bytes], expected: Sequence[str]
    ) -> list[SubtestOutcome]:
        transcript = read_transcript(output)
        for kind, error in (("infra-error", VmInfrastructureError), ("config-error", HarnessError)):
            event = transcript.first(kind)
            if event is not None:
                raise error(
                    f"vmrun: {event.text('message') or kind}",
                    where=f"harness {self.harness.name!r}",
                    hint=event.text("hint") or "see the batch's log for vmrun's output",
                )
        vm_exit = transcript.first("vm-exit")
        reason = _EXIT_REASONS.get(vm_exit.text("reason") or "", "") if vm_exit else ""
        watchdog = transcript.first("watchdog")
        if watchdog is not None and watchdog.text("phase") == "boot":
            reason = f"the guest did not boot within {watchdog.fields.get('seconds')} s"
        guest_error = transcript.first("guest-error")
        if guest_error is not None:
            reason = f"the guest could not run the command: {guest_error.text('message')}"
        missing = f"not reached: {reason or 'the VM stopped early'}"
        return outcomes_for_expected(
            reported=self._outcomes(transcript, final=True, expected=expected),
            expected=expected,
            missing_message=missing,
        )

    def _outcomes(
        self, transcript: VmTranscript, *, final: bool, expected: Sequence[str] = ()
    ) -> list[SubtestOutcome]:
        """Outcomes the transcript settles; with `final`, nothing more will come."""
        everyone = tuple(expected) or transcript.subtests
        errors = transcript.of_kind("kernel-error")
        during = events_by_subtest([e for e in errors if e.fields.get("boot") is not True])
        at_boot = next((e for e in errors if e.fields.get("boot") is True), None)
        stopped = events_by_subtest(transcript.of_kind("watchdog"))
        stopped.update(events_by_subtest(transcript.of_kind("batch-timeout")))
        # A guest that hangs while booting is a kernel that hangs: like any hung guest it is a
        # `timeout`, charged to the subtest that would have run first (the rest stay unreached).
        hung = next((e for e in transcript.of_kind("watchdog") if e.text("phase") == "boot"), None)
        if hung is not None and everyone:
            stopped.setdefault(everyone[0], hung)

        outcomes: dict[str, SubtestOutcome] = {}
        for verdict in self._parse(transcript.test_output, expected=()):
            if verdict.subtest in outcomes:
                continue
            kernel = during.get(verdict.subtest) or at_boot
            if kernel is not None:
                message = f"{_kernel_message(kernel)}; the test reported {verdict.status.value}"
                verdict = SubtestOutcome(verdict.subtest, Status.FAIL, verdict.duration, message)
            outcomes[verdict.subtest] = verdict
        for subtest, event in during.items():
            if subtest not in outcomes and (final or event.text("kind") == "panic"):
                outcomes[subtest] = SubtestOutcome(
                    subtest, Status.FAIL, None, _kernel_message(event)
                )
        for subtest, event in stopped.items():
            if subtest not in outcomes:
                seconds = event.fields.get("seconds")
                if event.kind != "watchdog":
                    message = f"still running when the batch hit its {seconds} s limit"
                elif event.text("phase") == "boot":
                    message = f"the guest did not boot within {seconds} s (watchdog stopped it)"
                else:
                    message = f"no result within {seconds} s (vmrun's watchdog stopped the VM)"
                outcomes[subtest] = SubtestOutcome(subtest, Status.TIMEOUT, None, message)
        if at_boot is not None and final:
            for subtest in everyone:
                if subtest not in outcomes:
                    message = _kernel_message(at_boot)
                    outcomes[subtest] = SubtestOutcome(subtest, Status.FAIL, None, message)
        return list(outcomes.values())


def _kernel_message(event: VmEvent) -> str:
    when = "during boot" if event.fields.get("boot") is True else "while it ran"
    return f"kernel {event.text('kind') or 'error'} {when}: {event.text('line') or ''}".strip()
