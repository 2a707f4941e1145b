"""A plan as people and programs read it: terraform-like text, JSON, and a PR-comment markdown."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from reconciler.app.blocked_render import (
    blocked_json,
    blocked_markdown,
    blocked_summary,
    blocked_text,
)
from reconciler.app.text_safety import markdown_cell, one_line
from reconciler.model.plan import RUN_REASONS, Plan, PlannedUnit

SHORT = 12
NEXT_UP = 10


def machine_hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def summary_line(plan: Plan) -> str:
    t = plan.totals
    line = (
        f"Plan: {t.builds_run} builds to run, {t.builds_reused} reused; "
        f"{t.results_run} results to run, {t.results_reused} reused "
        f"({t.results_reused_from_baselines} from baselines)"
    )
    if t.results_blocked or t.builds_blocked:
        line += f"; {t.results_blocked} blocked by {t.builds_blocked} failed builds"
    if plan.blocked:
        line += f"; {blocked_summary(plan.blocked)}"
    return line + f"; about {machine_hours(t.estimated_seconds)} machine-hours."


_COLUMNS = (
    "BRANCH",
    "COMMITS",
    "PROFILES",
    "BUILDS",
    "RUN",
    "REUSED",
    "FROM BASELINE",
    "BLOCKED",
    "HOURS",
)


def _origin_rows(plan: Plan) -> list[tuple[str, ...]]:
    return [
        (
            str(o.origin),
            str(o.commits),
            str(o.profiles),
            str(o.builds_run),
            str(o.results_run),
            str(o.results_reused),
            str(o.results_reused_from_baselines),
            str(o.results_blocked),
            f"{machine_hours(o.estimated_seconds):.2f}",
        )
        for o in plan.origins
    ]


def _describe(item: PlannedUnit) -> str:
    count = len(item.to_run)
    return (
        f"{item.commit[:SHORT]} {item.origin!s:<16} {item.profile:<10} {one_line(item.test)} "
        f"({count} of {item.subtests_total} subtests, {item.reason.value})"
    )


def render_text(plan: Plan) -> str:
    rows = [_COLUMNS, *_origin_rows(plan)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [
        summary_line(plan),
        f"(Hours from stored durations; where none: {plan.estimates.subtest_seconds:g} s per "
        f"subtest, {plan.estimates.build_seconds:g} s per build.)",
        "",
    ]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    if plan.suspended:
        lines += ["", "Suspended (nothing scheduled): " + ", ".join(plan.suspended)]
    to_run = [item for item in plan.items if item.reason in RUN_REASONS]
    if to_run:
        lines += ["", f"Next up (newest first, {len(to_run)} test files in all):"]
        lines += [f"  {_describe(item)}" for item in to_run[:NEXT_UP]]
    elif plan.blocked:
        lines += ["", "Nothing else to do: the store holds every result that could be planned."]
    else:
        lines += ["", "Nothing to do: the store holds every result the specs ask for."]
    lines += blocked_text(plan.blocked)
    return "\n".join(lines) + "\n"


def _item_json(item: PlannedUnit) -> dict[str, Any]:
    return {
        "branch": item.origin.name,
        "origin": item.origin.kind.value,
        "commit": item.commit,
        "subject": item.subject,
        "profile": item.profile,
        "harness": item.harness,
        "group": item.group,
        "test": item.test,
        "reason": item.reason.value,
        "subtests": item.subtests_total,
        "to_run": list(item.to_run),
        "unit": item.unit,
        "build": item.build,
        "priority": item.priority,
        "estimated_seconds": item.estimated_seconds,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    t = plan.totals
    return {
        "builds": {"run": t.builds_run, "reused": t.builds_reused, "blocked": t.builds_blocked},
        "results": {
            "run": t.results_run,
            "reused": t.results_reused,
            "reused_from_baselines": t.results_reused_from_baselines,
            "blocked": t.results_blocked,
        },
        "estimated_machine_hours": machine_hours(t.estimated_seconds),
        "origins": [
            {
                "name": o.origin.name,
                "origin": o.origin.kind.value,
                "commits": o.commits,
                "profiles": o.profiles,
                "builds_run": o.builds_run,
                "results_run": o.results_run,
                "results_reused": o.results_reused,
                "results_reused_from_baselines": o.results_reused_from_baselines,
                "results_blocked": o.results_blocked,
                "estimated_machine_hours": machine_hours(o.estimated_seconds),
            }
            for o in plan.origins
        ],
        "suspended": list(plan.suspended),
        "builds_planned": [
            {
                "build": b.build,
                "reason": b.reason.value,
                "commit": b.commit,
                "profile": b.profile,
                "origins": [str(o) for o in b.origins],
            }
            for b in plan.builds
        ],
        "items": [_item_json(item) for item in plan.items],
        "blocked": blocked_json(plan.blocked),
    }


def render_json(plan: Plan) -> str:
    return json.dumps(plan_json(plan), indent=2) + "\n"


_md = markdown_cell


def render_markdown(plan: Plan) -> str:
    lines = [f"**{_md(summary_line(plan))}**", ""]
    lines += ["<details><summary>Per branch</summary>", ""]
    lines.append("| " + " | ".join(_COLUMNS) + " |")
    lines.append("|" + "---|" * len(_COLUMNS))
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in _origin_rows(plan)]
    lines += ["", "</details>", ""]
    to_run = [item for item in plan.items if item.reason in RUN_REASONS]
    if to_run:
        reasons = Counter(item.reason.value for item in to_run)
        lines.append(
            f"<details><summary>{len(to_run)} test files to run ("
            + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
            + ")</summary>"
        )
        lines += [
            "",
            "| commit | branch | profile | test | subtests | reason |",
            "|---|---|---|---|---|---|",
        ]
        for item in to_run[:200]:
            lines.append(
                f"| `{item.commit[:SHORT]}` | {_md(str(item.origin))} | {_md(item.profile)} | "
                f"{_md(item.test)} | {len(item.to_run)}/{item.subtests_total} | "
                f"{item.reason.value} |"
            )
        if len(to_run) > 200:
            lines.append(f"| … | {len(to_run) - 200} more | | | | |")
        lines += ["", "</details>"]
    lines += blocked_markdown(plan.blocked)
    if plan.suspended:
        lines += ["", "Suspended: " + ", ".join(_md(name) for name in plan.suspended)]
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}
