"""Blocked work as every surface shows it: plans (text, JSON, markdown), status and dashboard.

A test file that cannot be listed, or needs a dependency that did not resolve, has no
identities to plan; it must still be seen, with its reason, wherever the plan is read, so one
renderer per format lives here and every surface uses the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.app.text_safety import markdown_cell, one_line
from reconciler.model.desired import BlockedWork

SHORT = 12
MARKDOWN_ROWS = 200


def blocked_subject(item: BlockedWork) -> str:
    """What is blocked: the test file, else the group, else the profile's work."""
    if item.test is not None:
        return item.test
    if item.group is not None:
        return f"test group {item.group}"
    return f"profile {item.profile}" if item.profile else f"harness {item.harness}"


def asked_by(item: BlockedWork) -> str:
    origins = ", ".join(str(origin) for origin in item.origins)
    count = len(item.commits)
    if not count:
        return origins
    return f"{origins}; {count} commit{'s' if count != 1 else ''}"


def blocked_summary(blocked: Sequence[BlockedWork]) -> str:
    files = sum(1 for item in blocked if item.test is not None)
    other = len(blocked) - files
    parts = [f"{files} test file{'s' if files != 1 else ''}"] if files else []
    parts += [f"the work of {other} profile{'s' if other != 1 else ''}"] if other else []
    return f"{' and '.join(parts)} blocked (not planned; reasons below)"


def blocked_text(blocked: Sequence[BlockedWork]) -> list[str]:
    if not blocked:
        return []
    lines = ["", f"Blocked: {len(blocked)} (the rest of the plan goes on):"]
    for item in blocked:
        subject = one_line(blocked_subject(item))
        lines.append(f"  {subject} [{item.reason.value}] asked by {asked_by(item)}")
        lines.append(f"    {one_line(item.message)}")
    return lines


def blocked_json(blocked: Sequence[BlockedWork]) -> list[dict[str, Any]]:
    return [
        {
            "reason": item.reason.value,
            "message": item.message,
            "harness": item.harness,
            "group": item.group,
            "test": item.test,
            "profile": item.profile,
            "origins": [str(origin) for origin in item.origins],
            "commits": list(item.commits),
        }
        for item in blocked
    ]


_md = markdown_cell


def blocked_markdown(blocked: Sequence[BlockedWork]) -> list[str]:
    if not blocked:
        return []
    lines = [
        "",
        f"<details open><summary>{len(blocked)} blocked (not planned)</summary>",
        "",
        "| test | group | reason | asked by | why |",
        "|---|---|---|---|---|",
    ]
    for item in blocked[:MARKDOWN_ROWS]:
        lines.append(
            f"| {_md(blocked_subject(item))} | {_md(item.group or '')} | {item.reason.value} | "
            f"{_md(asked_by(item))} | {_md(item.message)} |"
        )
    if len(blocked) > MARKDOWN_ROWS:
        lines.append(f"| … | {len(blocked) - MARKDOWN_ROWS} more | | | |")
    lines += ["", "</details>"]
    return lines
