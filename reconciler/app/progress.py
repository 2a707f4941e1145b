"""What a person watching `reconciler apply` sees: a rich progress bar on a terminal, one line
per round and a closing summary elsewhere (logs of a service, CI output)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Self, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from reconciler.app.apply import ApplyEvents, ApplySummary
from reconciler.model.execution import Batch
from reconciler.model.plan import Plan


class ApplyProgress:
    """Builds `ApplyEvents` that drive a progress bar (TTY) or stay quiet (not a TTY)."""

    def __init__(self, *, stream: TextIO = sys.stderr, force_terminal: bool | None = None):
        self.console = Console(file=stream, force_terminal=force_terminal)
        self.interactive = self.console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("subtests"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def events(self) -> ApplyEvents:
        return ApplyEvents(on_plan=self.on_plan, on_batch_done=self.on_batch_done)

    def on_plan(self, plan: Plan, batches: int) -> None:
        if not batches:
            return
        total = plan.totals.results_run
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(f"running {batches} batches", total=total)

    def on_batch_done(self, batch: Batch, recorded: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, len(batch.subtests))


def render_summary(summary: ApplySummary) -> str:
    parts = [
        f"Applied: {summary.batches} batches in {summary.rounds} rounds, "
        f"{summary.recorded} results recorded",
    ]
    if summary.reused_same_image:
        parts.append(
            f"{summary.reused_same_image} results reused from builds with an identical boot image"
        )
    if summary.blocked_batches:
        parts.append(f"{summary.blocked_batches} batches blocked by failed builds")
    if summary.infra_failures:
        parts.append(f"{summary.infra_failures} infrastructure failures (retried, not verdicts)")
    if summary.cooling_down:
        parts.append(f"{summary.cooling_down} batches cooling down after repeated failures")
    if summary.orphaned:
        parts.append(
            f"recovered {summary.orphaned} batches of an interrupted run "
            f"({summary.repaired} results re-indexed)"
        )
    if summary.toolchain_refusals:
        parts.append(
            f"{summary.toolchain_refusals} builds refused by hosts whose compiler changed"
            " (placed again)"
        )
    text = "; ".join(parts) + "."
    for held in summary.held_by_toolchain.values():
        text += f"\nHeld back: {held.message}."
    return text
