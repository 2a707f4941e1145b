"""JUnit XML output (fstests' result.xml, pytest, many `command` harnesses) to outcomes.

Parsed with defusedxml because the XML comes from the machine under test: a kernel that is
being tested may well produce hostile or broken output, and entity expansion must not take the
reconciler down with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from reconciler.adapters.harness.base import SubtestOutcome, outcomes_for_expected
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status

_MESSAGE_LIMIT = 2000
"""Longest message kept from a failure's text; the full text stays in the log."""


def parse_junit(output: str, *, expected: Sequence[str]) -> list[SubtestOutcome]:
    """Outcomes of `expected` subtests (and any extras) from a JUnit XML document.

    An expected test case missing from the document is an `error`: fstests leaves expunged and
    crashed tests out of result.xml, and absent is never passed.
    """
    try:
        root = fromstring(output)
    except (ParseError, DefusedXmlException) as exc:
        raise HarnessError(
            f"the harness output is not well-formed JUnit XML: {exc}",
            hint="check the `run` command prints only the XML report, or set `output: tap`",
        ) from exc
    reported = [_outcome(case) for case in root.iter("testcase")]
    return outcomes_for_expected(reported=reported, expected=expected)


def _outcome(case: Any) -> SubtestOutcome:
    name = case.get("name")
    if not name:
        raise HarnessError(
            "a <testcase> in the JUnit output has no name attribute",
            hint="every test case needs a name to match it to an enumerated subtest",
        )
    duration = _seconds(case.get("time"))
    for tag in ("failure", "error"):
        # JUnit's <error> is the test's own code raising, not our infrastructure failing:
        # the test ran and did not pass, which is a `fail` verdict.
        element = case.find(tag)
        if element is not None:
            return SubtestOutcome(name, Status.FAIL, duration, _message(element))
    skipped = case.find("skipped")
    if skipped is not None:
        return SubtestOutcome(name, Status.SKIP, duration, _message(skipped))
    return SubtestOutcome(name, Status.PASS, duration, None)


def _message(element: Any) -> str | None:
    text = element.get("message") or (element.text or "").strip() or element.get("type")
    return text[:_MESSAGE_LIMIT] if text else None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # a bad time attribute loses the duration, never the verdict
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
