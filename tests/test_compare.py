"""The pure comparison: every class, per-profile fixes, flaky attempts and the gate, as values."""

from __future__ import annotations

from collections import Counter

from reconciler.core.compare import (
    Change,
    Comparison,
    Gate,
    Observed,
    Side,
    TestKey,
    classify,
    compare,
)
from reconciler.model.results import Status

PASS, FAIL, SKIP, TIMEOUT, ERROR = (
    Status.PASS,
    Status.FAIL,
    Status.SKIP,
    Status.TIMEOUT,
    Status.ERROR,
)


def ran(status: Status, *later: Status) -> Observed:
    """A stored result whose first attempt gave `status`, then `later` attempts."""
    return Observed(status=status, attempts=(status, *later))


def side(**profiles: dict[TestKey, Observed | None]) -> Side:
    """Per profile: every key is expected; a None value is expected but not stored."""
    return Side(
        expected={profile: frozenset(results) for profile, results in profiles.items()},
        observed={
            profile: {key: obs for key, obs in results.items() if obs is not None}
            for profile, results in profiles.items()
        },
    )


def rows(comparison: Comparison) -> list[tuple[str, str, str, Change]]:
    return [(i.profile, i.test, i.subtest, i.change) for i in comparison.items]


def test_every_class_in_report_order() -> None:
    a = side(
        default={
            ("t", "regress"): ran(PASS),
            ("t", "times_out"): ran(PASS),
            ("t", "fixed"): ran(FAIL),
            ("t", "fixed_timeout"): ran(TIMEOUT),
            ("t", "still"): ran(FAIL),
            ("t", "flaky_in_a"): ran(PASS, FAIL),
            ("t", "flaky_in_b"): ran(PASS),
            ("t", "removed"): ran(PASS),
            ("t", "not_run_in_b"): ran(PASS),
            ("t", "error_in_b"): ran(PASS),
            ("t", "not_run_in_a"): None,
            ("t", "skipped"): ran(PASS),
            ("t", "same"): ran(PASS),
        }
    )
    b = side(
        default={
            ("t", "regress"): ran(FAIL),
            ("t", "times_out"): ran(TIMEOUT),
            ("t", "fixed"): ran(PASS),
            ("t", "fixed_timeout"): ran(PASS),
            ("t", "still"): ran(TIMEOUT),
            ("t", "flaky_in_a"): ran(PASS),
            ("t", "flaky_in_b"): ran(FAIL, PASS),
            ("t", "new"): ran(FAIL),
            ("t", "not_run_in_b"): None,
            ("t", "error_in_b"): Observed(status=ERROR, attempts=(ERROR,)),
            ("t", "not_run_in_a"): ran(PASS),
            ("t", "skipped"): ran(SKIP),
            ("t", "same"): ran(PASS),
        }
    )
    comparison = compare(a, b)
    assert rows(comparison) == [
        ("default", "t", "regress", Change.REGRESSION),
        ("default", "t", "times_out", Change.REGRESSION),
        ("default", "t", "error_in_b", Change.MISSING),
        ("default", "t", "not_run_in_a", Change.MISSING),
        ("default", "t", "not_run_in_b", Change.MISSING),
        ("default", "t", "flaky_in_a", Change.FLAKY),
        ("default", "t", "flaky_in_b", Change.FLAKY),
        ("default", "t", "still", Change.STILL_FAILING),
        ("default", "t", "fixed", Change.FIXED),
        ("default", "t", "fixed_timeout", Change.FIXED),
        ("default", "t", "new", Change.NEW),
        ("default", "t", "removed", Change.REMOVED),
        ("default", "t", "skipped", Change.SKIPPED),
        ("default", "t", "same", Change.UNCHANGED_PASS),
    ]
    missing = {i.subtest: i.missing_in for i in comparison.of(Change.MISSING)}
    assert missing == {"error_in_b": ("B",), "not_run_in_a": ("A",), "not_run_in_b": ("B",)}
    assert comparison.counts("default") == Counter(
        {
            Change.REGRESSION: 2,
            Change.MISSING: 3,
            Change.FLAKY: 2,
            Change.STILL_FAILING: 1,
            Change.FIXED: 2,
            Change.NEW: 1,
            Change.REMOVED: 1,
            Change.SKIPPED: 1,
            Change.UNCHANGED_PASS: 1,
        }
    )
    # A regression is known to be real; missing results cannot undo it.
    assert comparison.gate is Gate.REGRESSION


def test_a_fix_in_one_profile_counts_although_the_test_still_fails_in_another() -> None:
    # kdevops merged profiles and so reported nothing here: the test "still failed" somewhere.
    key = ("generic/475", "generic/475")
    a = side(default={key: ran(FAIL)}, kasan={key: ran(FAIL)})
    b = side(default={key: ran(PASS)}, kasan={key: ran(FAIL)})
    comparison = compare(a, b)
    assert rows(comparison) == [
        ("default", "generic/475", "generic/475", Change.FIXED),
        ("kasan", "generic/475", "generic/475", Change.STILL_FAILING),
    ]
    assert comparison.counts("default") == Counter({Change.FIXED: 1})
    assert comparison.counts("kasan") == Counter({Change.STILL_FAILING: 1})
    assert comparison.gate is Gate.OK


def test_a_regression_in_one_profile_is_not_hidden_by_a_pass_in_another() -> None:
    key = ("t", "s")
    a = side(default={key: ran(PASS)}, kasan={key: ran(PASS)})
    b = side(default={key: ran(PASS)}, kasan={key: ran(FAIL)})
    comparison = compare(a, b)
    assert [(i.profile, i.change) for i in comparison.items] == [
        ("default", Change.UNCHANGED_PASS),
        ("kasan", Change.REGRESSION),
    ]
    assert comparison.gate is Gate.REGRESSION


def test_flaky_means_mixed_verdicts_across_attempts() -> None:
    assert ran(FAIL, PASS).is_flaky
    assert ran(PASS, FAIL).is_flaky
    assert ran(PASS, SKIP).is_flaky
    # Failing twice, once by timeout, is failing; an infrastructure error is no verdict.
    assert not ran(FAIL, TIMEOUT).is_flaky
    assert not Observed(status=PASS, attempts=(ERROR, PASS)).is_flaky
    assert not ran(PASS, PASS).is_flaky
    # A flaky side is never a regression: its first verdict is not trusted to mean a change.
    assert classify(a=ran(PASS), b=ran(FAIL, PASS), in_a=True, in_b=True) is Change.FLAKY
    assert classify(a=ran(FAIL, PASS), b=ran(FAIL), in_a=True, in_b=True) is Change.FLAKY
    assert classify(a=ran(PASS), b=ran(FAIL, TIMEOUT), in_a=True, in_b=True) is Change.REGRESSION


def test_gate_codes() -> None:
    key = ("t", "s")
    clean = compare(side(p={key: ran(PASS)}), side(p={key: ran(PASS)}))
    flaky = compare(side(p={key: ran(PASS)}), side(p={key: ran(FAIL, PASS)}))
    incomplete = compare(side(p={key: ran(PASS)}), side(p={key: None}))
    regressed = compare(side(p={key: ran(PASS)}), side(p={key: ran(FAIL)}))
    assert [c.gate for c in (clean, flaky, incomplete, regressed)] == [
        Gate.OK,
        Gate.OK,
        Gate.INCOMPLETE,
        Gate.REGRESSION,
    ]
    assert [int(c.gate) for c in (clean, incomplete, regressed)] == [0, 2, 1]


def test_profiles_match_by_name_and_can_be_restricted() -> None:
    key = ("t", "s")
    a = side(default={key: ran(PASS)})
    b = side(default={key: ran(FAIL)}, debug={key: ran(PASS)})
    assert rows(compare(a, b)) == [
        ("default", "t", "s", Change.REGRESSION),
        ("debug", "t", "s", Change.NEW),
    ]
    assert rows(compare(a, b, profiles=["debug"])) == [("debug", "t", "s", Change.NEW)]
    assert compare(a, b, profiles=["debug"]).gate is Gate.OK


def test_a_new_test_without_a_verdict_is_missing_not_new() -> None:
    comparison = compare(side(p={}), side(p={("t", "s"): None}))
    assert rows(comparison) == [("p", "t", "s", Change.MISSING)]
    assert comparison.items[0].missing_in == ("B",)
    assert comparison.gate is Gate.INCOMPLETE


def test_stored_results_no_side_expects_are_ignored() -> None:
    key, stray = ("t", "s"), ("t", "gone")
    a = Side(expected={"p": frozenset({key})}, observed={"p": {key: ran(PASS), stray: ran(FAIL)}})
    b = Side(expected={"p": frozenset({key})}, observed={"p": {key: ran(PASS), stray: ran(PASS)}})
    assert rows(compare(a, b)) == [("p", "t", "s", Change.UNCHANGED_PASS)]
