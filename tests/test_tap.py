"""TAP streams as kernel test suites print them, to the exact outcomes the store will keep."""

from __future__ import annotations

import pytest

from reconciler.adapters.harness.base import SubtestOutcome
from reconciler.adapters.harness.tap import parse_tap
from reconciler.model.results import Status

PASS, FAIL, SKIP, TIMEOUT, ERROR = (
    Status.PASS,
    Status.FAIL,
    Status.SKIP,
    Status.TIMEOUT,
    Status.ERROR,
)


def outcome(
    name: str, status: Status, duration: float | None = None, message: str | None = None
) -> SubtestOutcome:
    return SubtestOutcome(name, status, duration, message)


KSELFTEST_NET = """\
TAP version 13
1..3
# selftests: net: tcp_fastopen
# tcp_fastopen: all good
ok 1 selftests: net: tcp_fastopen
# selftests: net: udpgso
# udpgso: sendmsg failed
not ok 2 selftests: net: udpgso # exit=1
# selftests: net: pmtu
ok 3 selftests: net: pmtu # SKIP no IPv6
"""

TAP14_SUBTESTS = """\
TAP version 14
1..3
# Subtest: alloc
    1..3
    ok 1 - small
    not ok 2 - large
    not ok 3 - huge
not ok 1 - alloc
# Subtest: free
    1..2
    ok 1 - once
    not ok 2 - twice # TODO double free not fixed yet
ok 2 - free
ok 3 - teardown
"""

# Test::More and KTAP put the `# Subtest:` line inside the indented block; nesting two deep.
KTAP_NESTED = """\
TAP version 14
1..1
    # Subtest: kunit_suite
    1..2
        # Subtest: case_a
        1..1
        not ok 1 - param_0
    not ok 1 - case_a
    ok 2 - case_b
not ok 1 - kunit_suite
"""

DIRECTIVES = """\
TAP version 13
1..6
ok 1 - skipped lower # skip not on this arch
not ok 2 - kselftest old skip # SKIP
not ok 3 - known bug # TODO fix in v7.1
ok 4 - fixed known bug # todo was flaky
not ok 5 - slow one # TIMEOUT 45 seconds
ok 6 - hash \\# in name # SKIPPED: no disk
"""

DURATIONS = """\
TAP version 13
1..3
ok 1 - fast
  ---
  duration_ms: 12.5
  ...
not ok 2 - slow
  ---
  message: "expected 1, got 2"
  duration_ms: 2000
  data: |
    ok 9 - not a test point, this is YAML text
  ...
ok 3 - no diagnostics
"""

BAIL_OUT = """\
TAP version 13
1..4
ok 1 - mount
not ok 2 - write
Bail out! lost connection to VM
ok 3 - read
"""

BAIL_OUT_IN_SUBTEST = """\
TAP version 14
1..2
# Subtest: group
    1..2
    ok 1 - a
    Bail out! kernel panic
ok 1 - group
ok 2 - other
"""

TRUNCATED = """\
TAP version 13
1..3
ok 1 - first
ok 2 - second
"""

EXACT_TOKENS = """\
1..3
not ok 1 - first
okay 2 - this line is not a test point
ok 3 - third
not okay 4 - neither is this
"""

SKIP_ALL = """\
TAP version 13
1..0 # SKIP needs root
"""

CASES = {
    "kselftest": (
        KSELFTEST_NET,
        [
            "selftests: net: tcp_fastopen",
            "selftests: net: udpgso",
            "selftests: net: pmtu",
        ],
        [
            outcome("selftests: net: tcp_fastopen", PASS),
            outcome("selftests: net: udpgso", FAIL, message="exit=1"),
            outcome("selftests: net: pmtu", SKIP, message="no IPv6"),
        ],
    ),
    "tap14 subtests fold into their parent": (
        TAP14_SUBTESTS,
        ["alloc", "free", "teardown"],
        [
            outcome("alloc", FAIL, message="failed subtests: large, huge"),
            outcome("free", PASS),
            outcome("teardown", PASS),
        ],
    ),
    "ktap nesting two deep": (
        KTAP_NESTED,
        ["kunit_suite"],
        [outcome("kunit_suite", FAIL, message="failed subtests: case_a")],
    ),
    "directives": (
        DIRECTIVES,
        [
            "skipped lower",
            "kselftest old skip",
            "known bug",
            "fixed known bug",
            "slow one",
            "hash # in name",
        ],
        [
            outcome("skipped lower", SKIP, message="not on this arch"),
            outcome("kselftest old skip", SKIP),
            outcome("known bug", SKIP, message="todo: fix in v7.1"),
            outcome("fixed known bug", PASS),
            outcome("slow one", TIMEOUT, message="TIMEOUT 45 seconds"),
            outcome("hash # in name", SKIP, message="no disk"),
        ],
    ),
    "durations from yaml diagnostics": (
        DURATIONS,
        ["fast", "slow", "no diagnostics"],
        [
            outcome("fast", PASS, duration=0.0125),
            outcome("slow", FAIL, duration=2.0),
            outcome("no diagnostics", PASS),
        ],
    ),
    "bail out": (
        BAIL_OUT,
        ["mount", "write", "read", "unmount"],
        [
            outcome("mount", PASS),
            outcome("write", FAIL),
            outcome("read", ERROR, message="bail out: lost connection to VM"),
            outcome("unmount", ERROR, message="bail out: lost connection to VM"),
        ],
    ),
    "bail out inside a subtest": (
        BAIL_OUT_IN_SUBTEST,
        ["group", "other"],
        [
            outcome("group", ERROR, message="bail out: kernel panic"),
            outcome("other", ERROR, message="bail out: kernel panic"),
        ],
    ),
    "plan promises more than reported": (
        TRUNCATED,
        ["first", "second", "third"],
        [
            outcome("first", PASS),
            outcome("second", PASS),
            outcome("third", ERROR, message="not reported (plan 1..3, 2 reported)"),
        ],
    ),
    "not ok is never ok, okay is nothing": (
        EXACT_TOKENS,
        ["first", "third"],
        [outcome("first", FAIL), outcome("third", PASS)],
    ),
    "skip all": (
        SKIP_ALL,
        ["a", "b"],
        [outcome("a", SKIP, message="needs root"), outcome("b", SKIP, message="needs root")],
    ),
    "absent is not passed; extras are kept": (
        "1..2\nok 1 - known\nok 2 - surprise\n",
        ["known", "forgotten"],
        [
            outcome("known", PASS),
            outcome("forgotten", ERROR, message="not reported"),
            outcome("surprise", PASS),
        ],
    ),
    "an old version line is ignored, not fatal": (
        "TAP version 12\n1..1\nok 1 - a\n",
        ["a"],
        [outcome("a", PASS)],
    ),
    "empty output": (
        "",
        ["a"],
        [outcome("a", ERROR, message="not reported")],
    ),
    "unnamed test points are named by number": (
        "1..2\nok 1\nnot ok\n",
        ["1", "2"],
        [outcome("1", PASS), outcome("2", FAIL)],
    ),
    "first report of a name stands": (
        "ok 1 - twice\nnot ok 2 - twice\n1..2\n",
        ["twice"],
        [outcome("twice", PASS)],
    ),
}


@pytest.mark.parametrize(("stream", "expected", "outcomes"), CASES.values(), ids=CASES.keys())
def test_tap_stream_to_outcomes(
    stream: str, expected: list[str], outcomes: list[SubtestOutcome]
) -> None:
    assert parse_tap(stream, expected=expected) == outcomes


def test_unterminated_yaml_block_does_not_swallow_later_test_points() -> None:
    stream = "1..2\nok 1 - a\n  ---\n  duration_ms: 5\nnot ok 2 - b\n"
    assert parse_tap(stream, expected=["a", "b"]) == [
        outcome("a", PASS, duration=0.005),
        outcome("b", FAIL),
    ]


def test_broken_yaml_block_keeps_the_verdict() -> None:
    stream = "1..1\nnot ok 1 - a\n  ---\n  duration_ms: [unclosed\n  ...\n"
    assert parse_tap(stream, expected=["a"]) == [outcome("a", FAIL)]
