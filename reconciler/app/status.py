"""Status written back to the spec repo after a pass: compute, render, commit, push.

Glue between the pure status documents (`core.status`, `core.status_render`), the store (stored
statuses of the units the branches and their baselines ask for) and the status branch
(`adapters.status_repo`). The reconcile loop calls `write_status` once per pass; because the
documents are a pure function of specs, results and the spec revision, an unchanged pass leaves
the status branch untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler import __version__
from reconciler.adapters.git_mirror import GitOutput, GitProcessError, run_git
from reconciler.adapters.status_repo import (
    DEFAULT_STATUS_BRANCH,
    PushRetry,
    StatusRepo,
    check_host_id,
)
from reconciler.adapters.store.files import ResultStore
from reconciler.core.status import (
    SHORT,
    blocked_builds,
    branch_statuses,
    host_status,
)
from reconciler.core.status_render import status_files
from reconciler.model.desired import DesiredState, OriginKind
from reconciler.model.errors import GitUnreachableError, UserError
from reconciler.model.plan import Plan
from reconciler.model.results import Status
from reconciler.model.specset import SpecSet

GIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class StatusWriteResult:
    commit: str | None
    """The status commit this pass made; None when nothing changed."""
    pushed: bool
    """A commit was pushed to the remote (this pass's, or an earlier one whose push failed)."""
    changed: bool


def write_status(
    *,
    specs: SpecSet,
    desired: DesiredState,
    plan: Plan,
    store: ResultStore,
    spec_repo: Path,
    host_id: str,
    observed_revision: str,
    stalled: Mapping[str, str] | None = None,
    remote: str | None = "origin",
    branch: str = DEFAULT_STATUS_BRANCH,
    retry: PushRetry | None = None,
) -> StatusWriteResult:
    """Write this host's status files to `branch` of the repo holding `spec_repo`.

    `plan` is the pass's latest plan: it says which builds failed (their results are blocked).
    `stalled` maps a branch name to why the loop could not resolve it this pass (a git error's
    one-line text); those branches report `ResolutionFailed`. `remote` is pushed to when the repo
    has it; otherwise only the local branch is written; `retry` bounds the push attempts and
    their backoff (default: 5 attempts, waits 1, 2, 4, 8 s). Raises `UserError` for a bad branch or
    host id, `InfrastructureError` when the push still fails after its retries.
    """
    check_host_id(host_id)
    writer = StatusRepo(spec_repo, branch=branch, remote=remote, retry=retry)
    statuses = branch_statuses(
        specs=specs,
        desired=desired,
        unit_statuses=_unit_statuses(specs=specs, desired=desired, store=store),
        blocked=blocked_builds(plan),
        stalled=stalled or {},
        host_id=host_id,
        observed_revision=observed_revision,
    )
    host = host_status(
        statuses,
        host_id=host_id,
        observed_revision=observed_revision,
        reconciler_version=__version__,
    )
    short = observed_revision[:SHORT] + ("-dirty" if observed_revision.endswith("-dirty") else "")
    written = writer.write(
        host_id=host_id,
        files=status_files(host),
        message=f"status: {host_id} at {short}",
    )
    return StatusWriteResult(commit=written.commit, pushed=written.pushed, changed=written.changed)


def _unit_statuses(
    *, specs: SpecSet, desired: DesiredState, store: ResultStore
) -> dict[str, dict[str, Status]]:
    """Stored subtest statuses of every unit a branch or a compared baseline asks for."""
    compared = {b.baseline for b in specs.branches.values() if b.baseline and not b.suspend}
    statuses: dict[str, dict[str, Status]] = {}
    for slot in desired.slots:
        if slot.origin.kind is OriginKind.BASELINE and slot.origin.name not in compared:
            continue
        for unit in slot.units:
            if unit.unit not in statuses:
                statuses[unit.unit] = {
                    row.subtest: row.status for row in store.results_for_unit(unit.unit)
                }
    return statuses


def spec_revision(spec_dir: Path) -> str:
    """The spec checkout's HEAD commit, plus `-dirty` when `spec_dir` differs from it.

    Dirty means a tracked file under `spec_dir` is modified (staged or not) or an untracked,
    not ignored, file is there: the specs the pass read are then not the ones of the commit,
    and the status says so rather than claim a revision it did not observe. Every dirty state
    reads the same (`<commit>-dirty`), so repeated passes over one edit still write nothing new.
    """
    head = _git_in(spec_dir, ["rev-parse", "--verify", "HEAD"])
    if head.returncode != 0:
        raise UserError(
            f"cannot read the spec revision of {spec_dir}: {head.error_text()}",
            hint="keep the specs in a git checkout with at least one commit",
        )
    changes = _git_in(spec_dir, ["status", "--porcelain", "--untracked-files=normal", "--", "."])
    if changes.returncode != 0:
        raise GitUnreachableError(f"cannot read git status of {spec_dir}: {changes.error_text()}")
    commit = head.stdout.decode().strip()
    return f"{commit}-dirty" if changes.stdout.strip() else commit


def _git_in(directory: Path, args: list[str]) -> GitOutput:
    try:
        return run_git(["-C", str(directory), *args], timeout=GIT_TIMEOUT)
    except GitProcessError as exc:
        raise GitUnreachableError(f"cannot run git in {directory}: {exc}") from exc
