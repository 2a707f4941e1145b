"""Status documents as the files of one host's directory on the status branch.

Byte-for-byte deterministic, so that an unchanged status is an unchanged git tree and the adapter
makes no commit: JSON with sorted keys, Markdown tables in a fixed order, nothing read from a
clock. JSON is for tools (dashboards, `jq`); the Markdown file is for a person browsing the
status branch on a forge.

Layout, relative to the host's directory:

    status.json                  the host summary (HostStatus)
    branches/<stem>.json         one BranchStatus per Branch spec
    branches/<stem>.md           the same, as a short table, newest commit first

`<stem>` is the branch name percent-encoded (see `branch_file_stem`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.core.status import (
    COUNT_KEYS,
    SHORT,
    BranchStatus,
    HostStatus,
    Regression,
)

MARKDOWN_REGRESSIONS_SHOWN = 20
"""New failures listed per commit and profile in Markdown; the JSON file lists them all."""

_SAFE_STEM = re.compile(r"[A-Za-z0-9_.-]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
# C0/C1 controls, DEL and the bidirectional overrides: shown as escapes, never sent raw to
# whoever renders or `cat`s the file.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def render_json(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def branch_file_stem(name: str) -> str:
    """A file name for a branch: every UTF-8 byte outside `[A-Za-z0-9_.-]`, and a leading `.`,
    as `%XX`.

    Injective (decoded by `urllib.parse.unquote`), never contains `/`, and never starts with
    `.`, so `fs/next` becomes `fs%2Fnext`, `linux-6.9` stays as it is, and no name can become
    `.`, `..`, `.git` or a hidden file. Branch spec names cannot hold `/` today; the encoding
    keeps the layout safe if they ever do. Names that differ only in case stay distinct in git,
    though not in a checkout on a case-insensitive file system.
    """
    return "".join(
        char
        if _SAFE_STEM.fullmatch(char) and not (index == 0 and char == ".")
        else "".join(f"%{byte:02X}" for byte in char.encode())
        for index, char in enumerate(name)
    )


def status_files(host: HostStatus) -> dict[str, bytes]:
    """Every file of the host's directory: path relative to it -> content."""
    files = {"status.json": render_json(host.document())}
    for branch in host.branches:
        stem = branch_file_stem(branch.branch)
        files[f"branches/{stem}.json"] = render_json(branch.document())
        files[f"branches/{stem}.md"] = render_markdown(branch).encode()
    return files


def markdown_text(text: str) -> str:
    """Free text (a commit subject, a message) as literal Markdown on one line.

    Subjects are written by anyone who pushes to a tracked branch: a `|` must not break the
    table, `<` and `&` must not become HTML, `[` must not start a link or image, and `*`, `_`,
    `~` and backquotes must not start emphasis or code.
    """
    one_line = " ".join(text.split())
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)
    return _CONTROL.sub(lambda match: f"\\\\x{ord(match.group()):02x}", escaped)


def _short_revision(revision: str) -> str:
    commit, dash, rest = revision.partition("-")
    return commit[:SHORT] + dash + rest


def _blocked_section(branch: BranchStatus) -> list[str]:
    if not branch.blocked_tests:
        return []
    lines = ["", "## Blocked: not planned", "", "| Test | Reason | Commits | Why |"]
    lines.append("| --- | --- | --- | --- |")
    lines += [
        f"| {markdown_text(b.test)} | {b.reason} | {b.commits} | {markdown_text(b.message)} |"
        for b in branch.blocked_tests
    ]
    return lines


def render_markdown(branch: BranchStatus) -> str:
    lines = [f"# {markdown_text(branch.branch)}", ""]
    facts = [
        f"host `{branch.host}`",
        f"spec revision `{_short_revision(branch.observed_revision)}`",
        f"repo `{branch.repo}`",
        f"ref {markdown_text(branch.ref)}",
    ]
    if branch.baseline is not None:
        pinned_commit = branch.baseline.commit
        pinned = f" at `{pinned_commit[:SHORT]}`" if pinned_commit else " (not resolved)"
        facts.append(f"baseline {markdown_text(branch.baseline.name)}{pinned}")
    lines += [" · ".join(facts), ""]
    lines += ["| Condition | Status | Reason | Message |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {c.type.value} | {c.status.value} | {c.reason.value} | {markdown_text(c.message)} |"
        for c in branch.conditions
    ]
    lines += _blocked_section(branch)
    if not branch.commits:
        return "\n".join([*lines, ""]) + "\n"

    columns = [c.capitalize() for c in COUNT_KEYS]
    header = ["Commit", "Subject", "Profile", "Build", *columns, "New failures"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    listed: list[tuple[str, str, tuple[Regression, ...]]] = []
    for commit in branch.commits:
        for profile in commit.profiles:
            new = "–" if profile.regressions is None else str(len(profile.regressions))
            cells = [
                f"`{commit.commit[:SHORT]}`",
                markdown_text(commit.subject),
                markdown_text(profile.profile),
                f"`{profile.build}`",
                *(str(profile.counts[key]) for key in COUNT_KEYS),
                new,
            ]
            lines.append("| " + " | ".join(cells) + " |")
            if profile.regressions:
                listed.append((commit.commit[:SHORT], profile.profile, profile.regressions))
    if listed and branch.baseline is not None:
        lines += ["", f"## New failures against {markdown_text(branch.baseline.name)}", ""]
        for commit_short, profile_name, regressions in listed:
            shown = ", ".join(
                f"{markdown_text(r.test)}:{markdown_text(r.subtest)} ({r.status.value})"
                for r in regressions[:MARKDOWN_REGRESSIONS_SHOWN]
            )
            more = len(regressions) - MARKDOWN_REGRESSIONS_SHOWN
            tail = f", and {more} more in the JSON file" if more > 0 else ""
            lines.append(f"- `{commit_short}` {markdown_text(profile_name)}: {shown}{tail}")
    return "\n".join(lines) + "\n"
