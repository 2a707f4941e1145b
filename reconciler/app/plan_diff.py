"""`plan --base REV --head REV`: what a spec change schedules, for the pull request that makes it.

Atlantis-style: CI runs this on every pull request of the spec repo and posts the markdown as a
comment, so a reviewer sees the cost of a change (builds, results, machine-hours) and why each
piece of work is not served by the store before merging it. Both revisions are loaded from git
(`spec_revisions`), resolved against the same source repositories, and planned against one store
snapshot; `core.plan_diff` compares them. Renderers: text (terminal), markdown (PR comment) and
JSON (other tools).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.store.files import ResultStore
from reconciler.app.blocked_render import (
    blocked_json,
    blocked_markdown,
    blocked_summary,
    blocked_text,
)
from reconciler.app.plan_render import machine_hours
from reconciler.app.planning import Planner, SnapshotSource, Workspace
from reconciler.app.spec_revisions import specs_at_revision
from reconciler.app.text_safety import markdown_cell, one_line
from reconciler.core.plan_diff import (
    DiffCounts,
    DiffRow,
    PlanDiff,
    UnitChange,
    diff_plans,
    reasons_by_count,
)
from reconciler.core.planner import plan
from reconciler.model.desired import DesiredState
from reconciler.model.errors import UserError

SHORT = 12
EXAMPLES = 3
"""Examples shown per reason: enough to recognise the pattern, short enough for a comment."""


def plan_between(
    *, spec_dir: Path, base: str, head: str, planner: Planner, index: SnapshotSource
) -> PlanDiff:
    """Plan the spec directory at `base` and at `head` against one snapshot of `index`."""
    with ExitStack() as revisions:
        # Both stay materialised until enumeration is done: expunge lists are read from them.
        base_specs = revisions.enter_context(specs_at_revision(spec_dir, revision=base))
        head_specs = revisions.enter_context(specs_at_revision(spec_dir, revision=head))
        base_desired = planner.desired(base_specs)
        head_desired = planner.desired(head_specs)
    # One snapshot for both: every difference between the plans then comes from the specs.
    snapshot = index.snapshot(DesiredState(slots=base_desired.slots + head_desired.slots))
    return diff_plans(
        base=base,
        head=head,
        base_desired=base_desired,
        base_plan=plan(base_desired, snapshot, estimates=planner.estimates),
        head_desired=head_desired,
        head_plan=plan(head_desired, snapshot, estimates=planner.estimates),
        snapshot=snapshot,
    )


def run_plan_diff(
    workspace: Workspace, *, base: str, head: str, fmt: str, fetch: bool
) -> tuple[str, PlanDiff]:
    """The `plan --base/--head` command: the rendered diff (text, markdown or json) and the diff.

    `fetch=False` (`--no-fetch`) plans against the source and harness mirrors as they are; the
    two spec revisions are always read from the local spec repo.
    """
    renderer = DIFF_RENDERERS.get(fmt)
    if renderer is None:
        raise UserError(
            f"unknown format {fmt!r}", hint=f"use one of {', '.join(sorted(DIFF_RENDERERS))}"
        )
    planner = Planner(
        git=GitResolver(workspace.git_cache, fetch=fetch),
        cache=SqliteEnumerationCache(workspace.enumeration_cache),
        dependency_root=workspace.dependency_trees,
    )
    with ResultStore(workspace.store_dir) as store:
        diff = plan_between(
            spec_dir=workspace.spec_dir, base=base, head=head, planner=planner, index=store.index
        )
    return renderer(diff), diff


def diff_summary_line(diff: PlanDiff) -> str:
    builds, results = diff.builds, diff.results
    line = (
        f"Plan: +{builds.added_to_run} builds, +{results.added_to_run} results to run "
        f"(~{machine_hours(diff.estimated_seconds):.2f} machine-hours), "
        f"{results.reused} reused, {results.removed} removed"
    )
    if builds.removed:
        line += f" ({builds.removed} builds)"
    already = results.run - results.added_to_run
    if already:
        line += f"; {already} more results to run as already planned at base"
    if diff.blocked:
        line += f"; {blocked_summary(diff.blocked)}"
    return line


_COLUMNS = ("BRANCH", "PROFILE", "+BUILDS", "-BUILDS", "+RESULTS", "RUN", "REUSED", "-RESULTS")


def _row_cells(row: DiffRow) -> tuple[str, ...]:
    return (
        str(row.origin),
        row.profile,
        str(row.builds_added),
        str(row.builds_removed),
        str(row.results_added),
        str(row.results_run),
        str(row.results_reused),
        str(row.results_removed),
        f"{machine_hours(row.estimated_seconds):.2f}",
    )


def _nearest_text(change: UnitChange) -> str:
    nearest = change.nearest
    if nearest is None:
        return "nothing similar stored"
    if nearest.unit == change.unit:
        return "the same identity, not stored yet"
    phrases = ", ".join(change.phrases) or "no input differs"
    return f"vs {nearest.source.value} {nearest.origin} {nearest.profile}: {phrases}"


def _example(change: UnitChange) -> str:
    return (
        f"{change.commit[:SHORT]} {change.origin} {change.profile} {one_line(change.test)} "
        f"({change.to_run} subtests; {_nearest_text(change)})"
    )


def _assumptions(diff: PlanDiff) -> str:
    return (
        f"(base {diff.base}, head {diff.head}; hours of the added work, from stored durations; "
        f"where none: {diff.estimates.subtest_seconds:g} s per subtest, "
        f"{diff.estimates.build_seconds:g} s per build.)"
    )


def render_diff_text(diff: PlanDiff) -> str:
    rows = [(*_COLUMNS, "HOURS"), *(_row_cells(row) for row in diff.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [diff_summary_line(diff), _assumptions(diff), ""]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    if not diff.changes:
        lines += ["", "Nothing to run: the store holds every result the head specs ask for."]
        return "\n".join(lines + blocked_text(diff.blocked)) + "\n"
    lines += ["", f"Why not reused ({len(diff.changes)} test files to run):"]
    for reason, changes in reasons_by_count(diff.changes):
        subtests = sum(change.to_run for change in changes)
        lines.append(f"  {reason}: {len(changes)} test files, {subtests} subtests")
        lines += [f"    e.g. {_example(change)}" for change in changes[:EXAMPLES]]
    return "\n".join(lines + blocked_text(diff.blocked)) + "\n"


_md = markdown_cell


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render_diff_markdown(diff: PlanDiff) -> str:
    lines = [
        f"**{_md(diff_summary_line(diff))}**",
        "",
        _md(_assumptions(diff)),
        "",
        "<details><summary>Per branch and profile</summary>",
        "",
    ]
    header = ("branch", "profile", "+builds", "-builds", "+results", "run", "reused", "-results")
    lines += _md_table(
        (*header, "hours"), [tuple(_md(cell) for cell in _row_cells(row)) for row in diff.rows]
    )
    lines += ["", "</details>"]
    if diff.changes:
        groups = reasons_by_count(diff.changes)
        lines += [
            "",
            f"<details><summary>Why not reused: {len(diff.changes)} test files to run "
            f"({', '.join(f'{len(c)} {_md(reason)}' for reason, c in groups)})</summary>",
            "",
        ]
        lines += _md_table(
            ("reason", "test files", "subtests", "examples"),
            [
                (
                    _md(reason),
                    str(len(changes)),
                    str(sum(change.to_run for change in changes)),
                    "<br>".join(_md(_example(change)) for change in changes[:EXAMPLES]),
                )
                for reason, changes in groups
            ],
        )
        lines += ["", "</details>"]
    lines += blocked_markdown(diff.blocked)
    return "\n".join(lines) + "\n"


def _counts_json(counts: DiffCounts) -> dict[str, int]:
    return {
        "added": counts.added,
        "added_to_run": counts.added_to_run,
        "removed": counts.removed,
        "run": counts.run,
        "reused": counts.reused,
    }


def _change_json(change: UnitChange) -> dict[str, Any]:
    nearest = change.nearest
    return {
        "branch": change.origin.name,
        "origin": change.origin.kind.value,
        "commit": change.commit,
        "subject": change.subject,
        "profile": change.profile,
        "harness": change.harness,
        "test": change.test,
        "unit": change.unit,
        "to_run": change.to_run,
        "reason": change.reason,
        "differences": [
            {"input": d.path, "change": d.phrase, "base": d.base, "head": d.head}
            for d in change.differences
        ],
        "nearest": None
        if nearest is None
        else {
            "unit": nearest.unit,
            "source": nearest.source.value,
            "branch": nearest.origin.name,
            "origin": nearest.origin.kind.value,
            "commit": nearest.commit,
            "profile": nearest.profile,
        },
    }


def plan_diff_json(diff: PlanDiff) -> dict[str, Any]:
    return {
        "base": diff.base,
        "head": diff.head,
        "builds": _counts_json(diff.builds),
        "results": _counts_json(diff.results),
        "estimated_machine_hours": machine_hours(diff.estimated_seconds),
        "estimates": {
            "subtest_seconds": diff.estimates.subtest_seconds,
            "build_seconds": diff.estimates.build_seconds,
        },
        "rows": [
            {
                "branch": row.origin.name,
                "origin": row.origin.kind.value,
                "profile": row.profile,
                "builds_added": row.builds_added,
                "builds_removed": row.builds_removed,
                "results_added": row.results_added,
                "results_added_to_run": row.results_added_to_run,
                "results_removed": row.results_removed,
                "results_run": row.results_run,
                "results_reused": row.results_reused,
                "estimated_machine_hours": machine_hours(row.estimated_seconds),
            }
            for row in diff.rows
        ],
        "changes": [_change_json(change) for change in diff.changes],
        "blocked": blocked_json(diff.blocked),
    }


def render_diff_json(diff: PlanDiff) -> str:
    return json.dumps(plan_diff_json(diff), indent=2) + "\n"


DIFF_RENDERERS: dict[str, Callable[[PlanDiff], str]] = {
    "text": render_diff_text,
    "markdown": render_diff_markdown,
    "json": render_diff_json,
}
