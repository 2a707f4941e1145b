"""JUnit XML reports (fstests' result.xml shape) to the exact outcomes the store will keep."""

from __future__ import annotations

import pytest

from reconciler.adapters.harness.base import SubtestOutcome
from reconciler.adapters.harness.junit import parse_junit
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status

FSTESTS_RESULT = """\
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="xfstests" failures="1" errors="1" skipped="1" tests="5" time="42">
  <properties><property name="FSTYP" value="bcachefs"/></properties>
  <testcase classname="xfstests.global" name="generic/001" time="3"/>
  <testcase classname="xfstests.global" name="generic/002" time="1.5">
    <failure message="- output mismatch (see generic/002.out.bad)" type="TestFail"/>
    <system-out>--- generic/002.out</system-out>
  </testcase>
  <testcase classname="xfstests.global" name="generic/003" time="0">
    <skipped message="no swap support"/>
  </testcase>
  <testcase classname="xfstests.global" name="generic/004" time="not-a-number">
    <error type="TestError">_check_dmesg: something found</error>
  </testcase>
  <testcase classname="xfstests.global" name="generic/999" time="2"/>
</testsuite>
"""


def test_fstests_result_xml() -> None:
    expected = ["generic/001", "generic/002", "generic/003", "generic/004", "generic/005"]
    assert parse_junit(FSTESTS_RESULT, expected=expected) == [
        SubtestOutcome("generic/001", Status.PASS, 3.0, None),
        SubtestOutcome(
            "generic/002", Status.FAIL, 1.5, "- output mismatch (see generic/002.out.bad)"
        ),
        SubtestOutcome("generic/003", Status.SKIP, 0.0, "no swap support"),
        SubtestOutcome("generic/004", Status.FAIL, None, "_check_dmesg: something found"),
        # fstests leaves expunged and crashed tests out of result.xml: absent is not passed.
        SubtestOutcome("generic/005", Status.ERROR, None, "not reported"),
        SubtestOutcome("generic/999", Status.PASS, 2.0, None),
    ]


def test_testsuites_root_and_nested_suites() -> None:
    report = (
        "<testsuites><testsuite name='a'><testcase name='x'/></testsuite>"
        "<testsuite name='b'><testcase name='y'><skipped/></testcase></testsuite></testsuites>"
    )
    assert parse_junit(report, expected=["x", "y"]) == [
        SubtestOutcome("x", Status.PASS, None, None),
        SubtestOutcome("y", Status.SKIP, None, None),
    ]


@pytest.mark.parametrize(
    "report",
    [
        "<testsuite><testcase name='x'></testsuite>",
        "",
        "PASS generic/001",
        # Entity expansion from the machine under test is refused, not expanded.
        '<!DOCTYPE t [<!ENTITY a "aaaa">]><testsuite><testcase name="&a;"/></testsuite>',
    ],
    ids=["unclosed tag", "empty", "not xml", "entities"],
)
def test_malformed_junit_is_a_harness_error(report: str) -> None:
    with pytest.raises(HarnessError) as raised:
        parse_junit(report, expected=["x"])
    assert raised.value.message.startswith("the harness output is not well-formed JUnit XML: ")
    assert raised.value.hint is not None


def test_testcase_without_name_is_a_harness_error() -> None:
    with pytest.raises(HarnessError, match="has no name attribute"):
        parse_junit("<testsuite><testcase time='1'/></testsuite>", expected=[])
