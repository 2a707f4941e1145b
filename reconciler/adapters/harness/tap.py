"""TAP 13 / TAP 14 (and kselftest's TAP) output to one outcome per subtest.

Most kernel test output is TAP: kselftest, KUnit (KTAP), and many `command` harness scripts. The
`tap.py` package classifies single lines for us (test point, plan, bail out, version,
diagnostic) and parses the SKIP and TODO directives the way Perl's TAP::Parser does. What it
does not do, we do here:

- Nested TAP 14 subtests (4-space indented blocks, usually after `# Subtest: name`): tap.py
  reads an indented line as unknown. We fold a block into its parent: the parent's own line is
  authoritative, and names of failing children go into the parent's message.
- YAML diagnostics (`duration_ms`): tap.py only reads them with PyYAML and more-itertools,
  which are not our dependencies, and then only at the top level; we cut the block out
  ourselves and read it with ruamel.yaml's safe loader.
- Bail out and the plan: tap.py reports the lines but gives them no meaning; here a bail out
  turns every unreported expected subtest into an infrastructure `error` (the harness gave up,
  so there is no verdict, and it is retried), as does a plan promising more than was reported.
- Exact tokens: tap.py's `^ok` pattern reads `okay 1` as a passing test point, and it cuts a
  description at an escaped `\\#`; we guard both before handing a line over.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from tap.parser import Parser

from reconciler.adapters.harness.base import NOT_REPORTED, SubtestOutcome, outcomes_for_expected
from reconciler.model.results import Status

_SUBTEST_INDENT = 4
"""TAP 14: a subtest's lines are indented by 4 spaces per level."""

# A test point starts with `ok` or `not ok` as a whole token: `okay 1` is not a test point.
_TEST_POINT_TOKEN = re.compile(r"(not ok|ok)(?=\s|$)")
_BAIL_OUT = "Bail out!"
_TIMEOUT_DIRECTIVE = re.compile(r"TIMEOUT\b", re.IGNORECASE)

# TAP 14 escapes: `\#` is a literal hash in a description, `\\` a literal backslash. They are
# swapped for private-use characters while tap.py splits the line, then swapped back.
_ESCAPED_BACKSLASH, _ESCAPED_HASH = "\ue000", "\ue001"


@dataclass(frozen=True)
class _YamlBlock:
    text: str
    next_index: int


def parse_tap(output: str, *, expected: Sequence[str]) -> list[SubtestOutcome]:
    """Outcomes of `expected` subtests (and any extras) from a TAP stream."""
    parser = Parser()
    lines = output.splitlines()
    reported: list[SubtestOutcome] = []
    failing_children: list[str] = []
    top_level_points = 0
    planned: int | None = None
    skip_all_reason: str | None = None
    bail_reason: str | None = None

    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        index += 1
        text = line.lstrip(" ")
        indent = len(line) - len(text)
        if not text:
            continue
        if text.startswith(_BAIL_OUT):
            # A bail out inside a subtest stops the whole run too (TAP 14).
            bail_reason = text[len(_BAIL_OUT) :].strip()
            break
        if not _is_test_point(text):
            if indent == 0:
                try:
                    parsed = parser.parse_line(text)
                except ValueError:
                    continue  # tap.py refuses `TAP version 12`; the lines after it still count
                if parsed.category == "plan" and planned is None:
                    planned = parsed.expected_tests
                    if planned == 0 and parsed.skip:
                        skip_all_reason = parsed.directive.reason or ""
            # Indented non-test lines are a child's plan, diagnostics or YAML: the parent's
            # line speaks for the block.
            continue

        block = _yaml_block(lines, start=index, indent=indent)
        index = block.next_index if block else index
        if indent == _SUBTEST_INDENT:
            child = _outcome(parser, text, position=None, duration=None, failing_children=[])
            if child.status in {Status.FAIL, Status.TIMEOUT}:
                failing_children.append(child.subtest)
        elif indent == 0:
            top_level_points += 1
            duration = _duration_seconds(block.text) if block else None
            reported.append(
                _outcome(
                    parser,
                    text,
                    position=top_level_points,
                    duration=duration,
                    failing_children=failing_children,
                )
            )
            failing_children = []

    if bail_reason is not None:
        message = f"bail out: {bail_reason}" if bail_reason else "bail out"
        return outcomes_for_expected(reported=reported, expected=expected, missing_message=message)
    if skip_all_reason is not None and not reported:
        # `1..0 # SKIP reason`: the whole test file said it does not apply (kselftest's
        # ksft_exit_skip), which is a verdict for every subtest in it.
        return outcomes_for_expected(
            reported=reported,
            expected=expected,
            missing_message=skip_all_reason or "skipped",
            missing_status=Status.SKIP,
        )
    if planned is not None and top_level_points < planned:
        message = f"{NOT_REPORTED} (plan 1..{planned}, {top_level_points} reported)"
        return outcomes_for_expected(reported=reported, expected=expected, missing_message=message)
    return outcomes_for_expected(reported=reported, expected=expected)


def _is_test_point(text: str) -> bool:
    return _TEST_POINT_TOKEN.match(text) is not None


def _outcome(
    parser: Parser,
    text: str,
    *,
    position: int | None,
    duration: float | None,
    failing_children: Sequence[str],
) -> SubtestOutcome:
    escaped = text.replace("\\\\", _ESCAPED_BACKSLASH).replace("\\#", _ESCAPED_HASH)
    result = parser.parse_line(escaped)
    description = _unescape(result.description)
    if description.startswith("-"):
        description = description[1:].lstrip()
    number = result.number if result.number is not None else position
    name = description or (str(number) if number is not None else "")
    directive = result.directive
    directive_text = _unescape(directive.text).strip()
    reason = _unescape(directive.reason or "").strip()

    if directive.skip:
        # Both `ok ... # SKIP` and `not ok ... # SKIP` are skips: kselftest's runner printed
        # the latter for years, and a test that says it cannot run has no pass/fail verdict.
        return SubtestOutcome(name, Status.SKIP, duration, reason or None)
    if directive.todo:
        # A test under the todo directive is a known failure: `not ok` there is expected, so
        # it is not a new failure (it must not flag a regression); `ok` under it simply passed.
        if result.ok:
            return SubtestOutcome(name, Status.PASS, duration, None)
        return SubtestOutcome(name, Status.SKIP, duration, f"todo: {reason}" if reason else "todo")
    if result.ok:
        return SubtestOutcome(name, Status.PASS, duration, None)
    parts = [directive_text] if directive_text else []
    if failing_children:
        parts.append("failed subtests: " + ", ".join(failing_children))
    message = "; ".join(parts) or None
    if _TIMEOUT_DIRECTIVE.match(directive_text):
        # kselftest's runner reports a killed test as `not ok N name # TIMEOUT 45 seconds`.
        return SubtestOutcome(name, Status.TIMEOUT, duration, message)
    return SubtestOutcome(name, Status.FAIL, duration, message)


def _unescape(text: str) -> str:
    return text.replace(_ESCAPED_HASH, "#").replace(_ESCAPED_BACKSLASH, "\\")


def _yaml_block(lines: Sequence[str], *, start: int, indent: int) -> _YamlBlock | None:
    """The YAML diagnostic block right after a test point, indented deeper than it, if any.

    An unterminated block ends where indentation returns to the test point's level, so a
    truncated stream never swallows the test points after it.
    """
    if start >= len(lines):
        return None
    opener = lines[start].rstrip()
    block_indent = len(opener) - len(opener.lstrip(" "))
    if opener.strip() != "---" or block_indent <= indent:
        return None
    body: list[str] = []
    index = start + 1
    while index < len(lines):
        line = lines[index].rstrip()
        stripped = line.lstrip(" ")
        line_indent = len(line) - len(stripped)
        if stripped == "..." and line_indent == block_indent:
            return _YamlBlock("\n".join(body), index + 1)
        if stripped and line_indent <= indent:
            break
        body.append(line[block_indent:] if line_indent >= block_indent else stripped)
        index += 1
    return _YamlBlock("\n".join(body), index)


def _duration_seconds(block: str) -> float | None:
    try:
        data = YAML(typ="safe", pure=True).load(block)
    except YAMLError:
        return None  # a broken diagnostic block loses its duration, never the verdict
    if not isinstance(data, dict):
        return None
    value = data.get("duration_ms")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value) / 1000
