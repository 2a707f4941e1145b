"""Running one batch on one host and recording what it says, subtest by subtest.

Results are written to the store as the output reports them, before the batch ends, so a batch
cut short (a killed reconciler, a dropped connection, a dead VM) keeps every subtest that
finished; only the rest run again. What the output never reports is not guessed:

- the batch timed out: the first unreported subtest was running, so it is a `timeout` verdict;
  the ones after it never started and are left for a fresh batch;
- the batch ended without reporting some subtests (the VM died, the harness gave up): they are
  left for a fresh batch, and only after `UNREACHED_LIMIT` such batches recorded as `error`
  (infrastructure, retried after a cool-down), never as a test failure.

A failing subtest of a group with `confirm_failures: N` is run N more times; every attempt is
recorded beside the first verdict, so a test that fails then passes shows as flaky.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.adapters.harness.base import BatchContext, HarnessAdapter, SubtestOutcome
from reconciler.adapters.store.files import ResultStore
from reconciler.app.dependency_setup import provision_dependencies
from reconciler.app.host_toolchain import run_environment
from reconciler.app.image_reuse import copy_same_image_results
from reconciler.app.worker_setup import HostWorkspace, PreparationError, runtime_env
from reconciler.core.identity import ResultIdentities, result_preimage
from reconciler.core.kbuild import boot_image, uses_kbuild
from reconciler.core.same_image import same_image_applies
from reconciler.model.errors import HarnessError
from reconciler.model.execution import Batch
from reconciler.model.results import VERDICTS, Attempt, BuildStatus, ResultRecord, Status

UNREACHED_LIMIT = 3
"""Batches that may end without reporting a subtest before it is recorded as `error`."""
MAX_GRACE_SECONDS = 60
"""Added to a batch's timeout for set-up and teardown around its subtests (at most this, and
at most one subtest's timeout, so short timeouts stay short)."""
REPARSE_SECONDS = 0.25
"""How often streamed output is re-read for finished subtests while a batch runs: often
enough that a kill mid-batch loses little, rarely enough to stay linear in the output size."""

FAILED = frozenset({Status.FAIL, Status.TIMEOUT})


@dataclass(frozen=True)
class BatchOutcome:
    """What one run of a batch achieved."""

    recorded: tuple[str, ...]
    """Subtests that got a result (verdict or error) in this run."""
    unreached: tuple[str, ...]
    """Subtests the run never got to: they belong in a fresh batch."""
    given_up: tuple[str, ...] = ()
    """Subtests recorded as `error` after too many batches never reached them."""
    blocked: bool = False
    """The build failed: nothing ran."""
    reused: tuple[str, ...] = ()
    """Subtests whose verdicts were copied from a build with a byte-identical boot image."""


class BatchRunner:
    """Runs batches on one host's workspace and writes their results to the store."""

    def __init__(
        self,
        *,
        workspace: HostWorkspace,
        store: ResultStore,
        adapters: Mapping[str, HarnessAdapter],
        clock: Callable[[], float] = time.time,
        unreached_counts: Callable[[str, str], int] | None = None,
    ) -> None:
        self.workspace = workspace
        self.store = store
        self.adapters = adapters
        self.clock = clock
        # (unit, subtest) -> how many batches ended without reaching it, counting this one.
        self._unreached_counts = unreached_counts or _counter()

    async def run(self, batch: Batch, *, attempt: int = 0) -> BatchOutcome:
        adapter = self.adapters[batch.build.harness]
        src, build = await self.workspace.ensure_build(
            batch.build, build_command=adapter.build_command()
        )
        if build.status is BuildStatus.FAIL:
            return BatchOutcome(recorded=(), unreached=(), blocked=True)
        # A batch requeued after an infrastructure failure may have stored some subtests
        # before it broke: those keep their verdict and are not run again.
        identities = ResultIdentities(batch.unit_preimage)
        pending = tuple(s for s in batch.subtests if self._status(identities, s) not in VERDICTS)
        # The build just made may have produced a boot image another build already tested.
        # Checked on the preimages first, so batches that cannot qualify read nothing more.
        reused: list[str] = []
        if same_image_applies(batch.build.preimage, batch.unit_preimage):
            reused = copy_same_image_results(
                self.store, unit=batch.unit, unit_preimage=batch.unit_preimage, subtests=pending
            )
        if reused:
            pending = tuple(s for s in pending if s not in reused)
        if not pending:
            return BatchOutcome(recorded=(), unreached=(), reused=tuple(reused))
        tests_dir = src
        kernel_image = None
        if uses_kbuild(batch.build.preimage):
            # `src` holds the build's artifacts, not its tree: the lineage's worktree has moved
            # on to other commits, so tests living in the source tree need their own checkout.
            kernel_image = boot_image(src, arch=batch.build.arch)
            if batch.tests_source is None:
                tests_dir = await self.workspace.checkout(
                    batch.build.source, into=f"src/{batch.build.build}"
                )
        extra_env: dict[str, str] = {}
        if batch.tests_source is not None and batch.dependencies:
            tests_dir, deps_dir = await provision_dependencies(
                self.workspace, tests=batch.tests_source, dependencies=batch.dependencies
            )
            extra_env["ktest_deps_dir"] = deps_dir
        elif batch.tests_source is not None:
            tests_dir = await self.workspace.checkout(
                batch.tests_source, into=f"harness/{batch.tests_source.tree}"
            )
        outcome = await self._run_once(
            batch,
            adapter=adapter,
            src=src,
            tests_dir=tests_dir,
            kernel_image=kernel_image,
            attempt=attempt,
            subtests=pending,
            extra_env=extra_env,
        )
        failed = [s for s in outcome.recorded if self._status(identities, s) in FAILED]
        for confirm in range(batch.confirm_failures):
            if not failed:
                break
            await self._run_once(
                batch,
                adapter=adapter,
                src=src,
                tests_dir=tests_dir,
                kernel_image=kernel_image,
                attempt=attempt + 1 + confirm,
                subtests=tuple(failed),
                extra_env=extra_env,
            )
        return dataclasses.replace(outcome, reused=tuple(reused))

    def _status(self, identities: ResultIdentities, subtest: str) -> Status | None:
        record = self.store.get_result(identities.of(subtest))
        return record.status if record is not None else None

    async def _run_once(
        self,
        batch: Batch,
        *,
        adapter: HarnessAdapter,
        src: str,
        tests_dir: str,
        kernel_image: str | None,
        attempt: int,
        subtests: tuple[str, ...],
        extra_env: Mapping[str, str],
    ) -> BatchOutcome:
        host = self.workspace.host
        context = BatchContext(
            test=batch.test,
            subtests=subtests,
            runtime=batch.unit_preimage.get("runtime", {}),
            source_dir=src,
            tests_dir=tests_dir,
            output_dir=await self.workspace.output_dir(batch.id, attempt=attempt),
            timeout=batch.timeout,
            kernel_image=kernel_image,
        )
        recorder = _Recorder(self, batch=batch, expected=subtests)
        stream = _Stream(adapter=adapter, recorder=recorder, clock=self.clock)
        result = await host.run(
            adapter.batch_command(context),
            cwd=tests_dir,
            # The toolchain's CC last: a kernel built inside the run (ktest) uses the compiler
            # its identity names, whatever the runtime env says.
            env={
                **runtime_env(context.runtime),
                **dict(batch.runtime_env),
                **extra_env,
                **run_environment(batch.build),
            },
            timeout=batch.timeout * len(subtests)
            + min(MAX_GRACE_SECONDS, batch.timeout)
            + adapter.setup_seconds,
            on_line=stream.line,
        )
        log = self.store.put_log(result.output)
        recorder.log = log
        files = {}
        for path in adapter.result_files(context):
            content = await host.read_file(path)
            if content is not None:
                files[path] = content
        try:
            final = adapter.parse_results(
                output=result.output.decode(errors="replace"), files=files, expected=subtests
            )
        except HarnessError as error:
            # Result files come from the worker: a truncated or hostile one says nothing about
            # the tests. Subtests streamed before stay; the batch is retried like any breakage.
            raise PreparationError(
                f"{host.name}: unreadable results of {batch.test}: {error.message}",
                hint="check the worker's disk; the batch is retried",
            ) from error
        reported = {o.subtest for o in stream.seen} | {
            o.subtest for o in final if o.status is not Status.ERROR
        }
        running_at_timeout = next((s for s in subtests if s not in reported), None)
        unreached: list[str] = []
        given_up: list[str] = []
        for outcome in final:
            if outcome.status is not Status.ERROR or outcome.subtest in reported:
                recorder.record(outcome)
            elif result.timed_out and outcome.subtest == running_at_timeout:
                recorder.record(
                    SubtestOutcome(
                        outcome.subtest,
                        Status.TIMEOUT,
                        None,
                        f"still running when the batch hit its {batch.timeout} s per subtest "
                        "timeout",
                    )
                )
            elif self._unreached_counts(batch.unit, outcome.subtest) >= UNREACHED_LIMIT:
                recorder.record(outcome)  # an `error`: retried after a cool-down
                given_up.append(outcome.subtest)
            else:
                unreached.append(outcome.subtest)
        return BatchOutcome(
            recorded=tuple(recorder.written),
            unreached=tuple(unreached),
            given_up=tuple(given_up),
        )


def _counter() -> Callable[[str, str], int]:
    counts: dict[tuple[str, str], int] = {}

    def bump(unit: str, subtest: str) -> int:
        counts[unit, subtest] = counts.get((unit, subtest), 0) + 1
        return counts[unit, subtest]

    return bump


class _Recorder:
    """Writes each subtest's outcome once per run, as soon as it is known."""

    def __init__(self, runner: BatchRunner, *, batch: Batch, expected: Sequence[str]) -> None:
        self.runner = runner
        self.batch = batch
        self.expected = frozenset(expected)
        self.identities = ResultIdentities(batch.unit_preimage)
        self.written: list[str] = []
        self.log: str | None = None

    def record(self, outcome: SubtestOutcome, *, log: str | None = None) -> None:
        if outcome.subtest in self.written:
            return
        self.written.append(outcome.subtest)
        store, batch = self.runner.store, self.batch
        now = datetime.fromtimestamp(self.runner.clock(), UTC)
        attempt = Attempt(
            status=outcome.status,
            duration=outcome.duration,
            worker=self.runner.workspace.host.name,
            log=log or self.log,
            finished_at=now,
            message=outcome.message,
        )
        store.put_result(
            ResultRecord(
                id=self.identities.of(outcome.subtest),
                unit=batch.unit,
                build=batch.build.build,
                test=batch.test,
                subtest=outcome.subtest,
                preimage=result_preimage(batch.unit_preimage, outcome.subtest),
                status=outcome.status,
                duration=outcome.duration,
                attempts=[attempt],
            )
        )


class _Stream:
    """Output lines as they arrive; finished subtests recorded while the batch still runs."""

    def __init__(
        self, *, adapter: HarnessAdapter, recorder: _Recorder, clock: Callable[[], float]
    ) -> None:
        self.adapter = adapter
        self.recorder = recorder
        self.clock = clock
        self.lines: list[str] = []
        self.seen: list[SubtestOutcome] = []
        self._parsed_at = 0.0

    def line(self, text: str) -> None:
        self.lines.append(text)
        now = self.clock()
        # Re-reading the whole output on every line would be quadratic on a kernel's console
        # log; once a second keeps the loss window small at a linear cost.
        if now - self._parsed_at >= REPARSE_SECONDS:
            self._parsed_at = now
            self.flush()

    def flush(self) -> None:
        output = "\n".join(self.lines)
        finished = [
            outcome
            for outcome in self.adapter.reported(output=output)
            if outcome.subtest in self.recorder.expected
            and outcome.status is not Status.ERROR
            and outcome.subtest not in self.recorder.written
        ]
        if not finished:
            return
        # The output so far is these subtests' log: stored now, because the batch (or the
        # reconciler) may not live to store the whole one.
        log = self.recorder.runner.store.put_log(output.encode())
        for outcome in finished:
            self.seen.append(outcome)
            self.recorder.record(outcome, log=log)
