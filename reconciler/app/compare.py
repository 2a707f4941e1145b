"""`reconciler compare A B`: pick two commits by name, gather their stored verdicts, classify.

Sides are named the way a kernel developer thinks of them, never by identity hashes:

- `main`: the newest commit of branch `main`;
- `main@8bb4635`: the commit of `main` whose hash starts with `8bb4635` (among the commits the
  branch keeps tested, its `max_commits`);
- `8bb4635`: that commit wherever the specs test it (any branch or baseline); at least 4 hex;
- `baseline:v1.0`: the commit baseline `v1.0` pins.

A branch name wins over a commit prefix that happens to be spelled the same, as in git.

What a side *should* hold comes from the specs' desired state (the subtests its harnesses
enumerate for that commit and profile), so a test that never ran is `missing`, not passed. Only
commits the specs ask for can be compared: their identities are what the store is keyed by.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.planning import Planner, Workspace
from reconciler.app.text_safety import markdown_cell, one_line
from reconciler.core.compare import (
    CHANGE_ORDER,
    Change,
    ComparedTest,
    Comparison,
    Gate,
    Observed,
    Side,
    TestKey,
    compare,
)
from reconciler.model.desired import DesiredSlot, DesiredState, Origin, OriginKind, ResolvedCommit
from reconciler.model.errors import UserError
from reconciler.model.results import Status

BASELINE_PREFIX = "baseline:"
MIN_PREFIX = 4
_HEX = re.compile(r"^[0-9a-f]+$")
SELECTOR_HINT = "use BRANCH, BRANCH@COMMIT, COMMIT (4+ hex) or baseline:NAME"

_PLURALS = {Change.REGRESSION: "regressions"}
_GATE_WORDS = {Gate.OK: "ok", Gate.REGRESSION: "regression", Gate.INCOMPLETE: "incomplete"}


@dataclass(frozen=True)
class Selected:
    """One side as the user named it, and the desired slots (one per profile) it stands for."""

    selector: str
    commit: ResolvedCommit
    origins: tuple[Origin, ...]
    slots: tuple[DesiredSlot, ...]

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(sorted({slot.profile for slot in self.slots}))

    def as_json(self) -> dict[str, Any]:
        return {
            "selector": self.selector,
            "commit": self.commit.commit,
            "subject": self.commit.subject,
            "origins": [str(origin) for origin in self.origins],
            "profiles": list(self.profiles),
        }


@dataclass(frozen=True)
class CompareReport:
    a: Selected
    b: Selected
    comparison: Comparison


def select(desired: DesiredState, selector: str) -> Selected:
    """The slots `selector` names (syntax in the module docstring); UserError if none or many."""
    if selector.startswith(BASELINE_PREFIX):
        name = selector[len(BASELINE_PREFIX) :]
        slots = _of_origin(desired, Origin(OriginKind.BASELINE, name))
        if not slots:
            known = _origin_names(desired, OriginKind.BASELINE)
            raise UserError(f"no baseline named {name!r}", hint=f"known baselines: {known}")
        return _selected(selector, slots)
    if "@" in selector:
        branch, _, prefix = selector.partition("@")
        slots = _branch_slots(desired, branch)
        return _selected(selector, _with_prefix(slots, prefix, where=f"branch {branch!r}"))
    branch_slots = _of_origin(desired, Origin(OriginKind.BRANCH, selector))
    if branch_slots:
        newest = min(slot.position for slot in branch_slots)
        return _selected(selector, [s for s in branch_slots if s.position == newest])
    if _HEX.match(selector.lower()):
        return _selected(selector, _with_prefix(desired.slots, selector, where="the specs"))
    raise UserError(
        f"{selector!r} is not a branch, baseline or commit the specs test",
        hint=f"{SELECTOR_HINT}; branches: {_origin_names(desired, OriginKind.BRANCH)}",
    )


def _of_origin(desired: DesiredState, origin: Origin) -> list[DesiredSlot]:
    return [slot for slot in desired.slots if slot.origin == origin]


def _origin_names(desired: DesiredState, kind: OriginKind) -> str:
    names = sorted({slot.origin.name for slot in desired.slots if slot.origin.kind is kind})
    return ", ".join(names) or "none"


def _branch_slots(desired: DesiredState, branch: str) -> list[DesiredSlot]:
    slots = _of_origin(desired, Origin(OriginKind.BRANCH, branch))
    if not slots:
        raise UserError(
            f"no tested branch named {branch!r}",
            hint=f"branches (suspended ones are not tested): "
            f"{_origin_names(desired, OriginKind.BRANCH)}",
        )
    return slots


def _with_prefix(slots: Iterable[DesiredSlot], prefix: str, *, where: str) -> list[DesiredSlot]:
    prefix = prefix.lower()
    if len(prefix) < MIN_PREFIX or not _HEX.match(prefix):
        raise UserError(
            f"{prefix!r} is not a commit prefix", hint=f"give at least {MIN_PREFIX} hex digits"
        )
    matching = [slot for slot in slots if slot.commit.commit.startswith(prefix)]
    commits = sorted({slot.commit.commit for slot in matching})
    if not commits:
        raise UserError(
            f"no commit starting with {prefix} in {where}",
            hint="only commits the specs keep tested (max_commits, baselines) can be compared",
        )
    if len(commits) > 1:
        shown = ", ".join(commit[:12] for commit in commits)
        raise UserError(f"commit prefix {prefix} is ambiguous: {shown}", hint="give more digits")
    return matching


def _selected(selector: str, slots: Sequence[DesiredSlot]) -> Selected:
    return Selected(
        selector=selector,
        commit=slots[0].commit,
        origins=tuple(sorted({slot.origin for slot in slots})),
        slots=tuple(slots),
    )


def gather_side(selected: Selected, *, store: ResultStore) -> Side:
    """What the side's slots expect, and the verdicts (with every attempt) the store holds."""
    expected: dict[str, set[TestKey]] = {}
    observed: dict[str, dict[TestKey, Observed]] = {}
    for slot in selected.slots:
        wanted = expected.setdefault(slot.profile, set())
        stored_here = observed.setdefault(slot.profile, {})
        for unit in slot.units:
            rows = {row.subtest: row for row in store.results_for_unit(unit.unit)}
            for subtest in unit.subtests:
                key = (unit.test, subtest)
                wanted.add(key)
                row = rows.get(subtest)
                if row is None or key in stored_here:
                    continue
                attempts: tuple[Status, ...] = ()
                if row.status.is_verdict:
                    # Flaky needs every attempt, which only the record file holds.
                    record = store.get_result(row.id)
                    if record is not None:
                        attempts = tuple(attempt.status for attempt in record.attempts)
                stored_here[key] = Observed(status=row.status, attempts=attempts, result=row.id)
    return Side(
        expected={profile: frozenset(keys) for profile, keys in expected.items()},
        observed=observed,
    )


def compare_selected(
    a: Selected, b: Selected, *, store: ResultStore, profiles: Sequence[str] = ()
) -> Comparison:
    """Compare two resolved sides, profiles matched by name (restricted to `profiles` if any)."""
    known = sorted({*a.profiles, *b.profiles})
    unknown = [profile for profile in profiles if profile not in known]
    if unknown:
        raise UserError(
            f"no profile {', '.join(map(repr, unknown))} on either side",
            hint=f"profiles: {', '.join(known)}",
        )
    chosen = list(profiles) or known
    return compare(gather_side(a, store=store), gather_side(b, store=store), profiles=chosen)


def run_compare(
    workspace: Workspace,
    *,
    a: str,
    b: str,
    profiles: Sequence[str] = (),
    fetch: bool = True,
) -> CompareReport:
    specs = load_specs(workspace.spec_dir)
    with (
        SqliteEnumerationCache(workspace.enumeration_cache) as cache,
        ResultStore(workspace.store_dir) as store,
    ):
        planner = Planner(
            git=GitResolver(workspace.git_cache, fetch=fetch),
            cache=cache,
            dependency_root=workspace.dependency_trees,
        )
        desired = planner.desired(specs)
        side_a, side_b = select(desired, a), select(desired, b)
        comparison = compare_selected(side_a, side_b, store=store, profiles=profiles)
    return CompareReport(a=side_a, b=side_b, comparison=comparison)


# Rendering.


def _count_phrase(count: int, change: Change) -> str:
    return f"{count} {_PLURALS.get(change, change.value) if count != 1 else change.value}"


def counts_line(comparison: Comparison, profile: str | None = None) -> str:
    counts = comparison.counts(profile)
    parts = [_count_phrase(counts[c], c) for c in CHANGE_ORDER if counts[c]]
    return ", ".join(parts) or "nothing to compare"


def _shown(observed: Observed | None, *, missing: bool) -> str:
    """A side's status: `-` where the side does not have the test at all."""
    if observed is None:
        return "not run" if missing else "-"
    if not observed.has_verdict:
        return "no verdict"
    if observed.is_flaky:
        return "/".join(status.value for status in observed.attempts)
    return observed.status.value


def _transition(item: ComparedTest) -> str:
    a = _shown(item.a, missing="A" in item.missing_in)
    return f"{a} -> {_shown(item.b, missing='B' in item.missing_in)}"


def gate_line(comparison: Comparison) -> str:
    gate = comparison.gate
    text = f"gate: {_GATE_WORDS[gate]} (exit {int(gate)})"
    if gate is Gate.INCOMPLETE:
        text += "; run `reconciler apply` for the missing results"
    return text


def _gate_words(comparison: Comparison) -> str:
    gate = comparison.gate
    return f"gate {_GATE_WORDS[gate]}, exit {int(gate)}"


def _side_line(label: str, side: Selected) -> str:
    selector, subject = one_line(side.selector), one_line(side.commit.subject)
    return f"{label}  {selector:<20} {side.commit.commit[:12]}  {subject}"


def render_text(report: CompareReport) -> str:
    comparison = report.comparison
    lines = [_side_line("A", report.a), _side_line("B", report.b)]
    for profile in comparison.profiles:
        lines += ["", f"profile {profile}: {counts_line(comparison, profile)}"]
        # Unchanged passes are the bulk of a farm's results: counted above, never listed.
        shown = [
            item
            for item in comparison.items
            if item.profile == profile and item.change is not Change.UNCHANGED_PASS
        ]
        width = max((len(one_line(f"{i.test}:{i.subtest}")) for i in shown), default=0)
        for item in shown:
            name = one_line(f"{item.test}:{item.subtest}")
            lines.append(f"  {item.change.value:<15} {name:<{width}}  {_transition(item)}")
    lines += ["", gate_line(comparison)]
    return "\n".join(lines) + "\n"


def render_markdown(report: CompareReport) -> str:
    comparison = report.comparison
    a, b = report.a, report.b
    lines = [
        f"**compare <code>{markdown_cell(a.selector)}</code> →"
        f" <code>{markdown_cell(b.selector)}</code>:"
        f" {counts_line(comparison)}** ({_gate_words(comparison)})",
        "",
        f"A: `{a.commit.commit[:12]}` {markdown_cell(a.commit.subject)}  ",
        f"B: `{b.commit.commit[:12]}` {markdown_cell(b.commit.subject)}",
        "",
        "| profile | " + " | ".join(c.value for c in CHANGE_ORDER) + " |",
        "| --- |" + " ---: |" * len(CHANGE_ORDER),
    ]
    for profile in comparison.profiles:
        counts = comparison.counts(profile)
        lines.append(f"| {profile} | " + " | ".join(str(counts[c]) for c in CHANGE_ORDER) + " |")
    for profile in comparison.profiles:
        changed = [
            item
            for item in comparison.items
            if item.profile == profile and item.change is not Change.UNCHANGED_PASS
        ]
        if not changed:
            continue
        lines += [
            "",
            "<details>",
            f"<summary>{profile}: {counts_line(comparison, profile)}</summary>",
            "",
            *(
                f"- {item.change.value}:"
                f" <code>{markdown_cell(f'{item.test}:{item.subtest}')}</code>"
                f" {_transition(item)}"
                for item in changed
            ),
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _observed_json(observed: Observed | None) -> dict[str, Any] | None:
    if observed is None:
        return None
    return {
        "status": observed.status.value,
        "attempts": [status.value for status in observed.attempts],
        "result": observed.result,
    }


def render_json(report: CompareReport) -> str:
    comparison = report.comparison
    document = {
        "a": report.a.as_json(),
        "b": report.b.as_json(),
        "gate": int(comparison.gate),
        "counts": {
            profile: {c.value: comparison.counts(profile)[c] for c in CHANGE_ORDER}
            for profile in comparison.profiles
        },
        "items": [
            {
                "profile": item.profile,
                "test": item.test,
                "subtest": item.subtest,
                "change": item.change.value,
                "a": _observed_json(item.a),
                "b": _observed_json(item.b),
                "missing_in": list(item.missing_in),
            }
            for item in comparison.items
        ],
    }
    return json.dumps(document, indent=2) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
