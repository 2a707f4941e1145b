"""Classify two result sets test by test, per profile: what regressed, what was fixed, what flaked.

`reconciler compare A B` is a gate between a baseline (or an older commit) and a candidate. Two
decisions from the heritage shape it:

- Classes are decided per profile. kdevops' compare script merged profiles and so missed a fix
  whenever the same test still failed under another profile; here the profile is part of the key,
  and profiles are matched between sides by name.
- Absent is not passed (fstests leaves expunged tests out of `result.xml`). Each side says which
  (test, subtest) pairs it *should* have (its desired subtests) apart from which verdicts are
  stored; a pair expected but without a verdict is `missing`, and the comparison is incomplete.

One class per (profile, test, subtest), decided in this order, the first that applies:

1. missing: expected on a side, no verdict stored there (an `error`-only result is no verdict);
2. new / removed: expected only in B / only in A;
3. flaky: a side's attempts hold mixed verdicts (pass and fail, say); the first verdict is not
   trusted to mean a change, so a flaky test is never a regression;
4. skipped: skip on either side: nothing to compare;
5. regression (A pass, B fail or timeout), fixed (A fail/timeout, B pass), still failing (both
   fail or timeout), unchanged pass (both pass).

The gate: 1 if any regression, else 2 if any pair is missing (results incomplete: run `apply`),
else 0. A regression wins over incompleteness because it is already known to be real; waiting for
the rest of the results cannot undo it.

Pure: the app gathers both sides from the specs and the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from reconciler.model.results import Status

TestKey = tuple[str, str]
"""(test, subtest)."""

_FAILING = frozenset({Status.FAIL, Status.TIMEOUT})


class Change(StrEnum):
    """What happened to one (profile, test, subtest) between A and B; in report order."""

    REGRESSION = "regression"
    MISSING = "missing"
    FLAKY = "flaky"
    STILL_FAILING = "still-failing"
    FIXED = "fixed"
    NEW = "new"
    REMOVED = "removed"
    SKIPPED = "skipped"
    UNCHANGED_PASS = "unchanged-pass"


CHANGE_ORDER: tuple[Change, ...] = tuple(Change)


class Gate(IntEnum):
    """Exit codes of `compare`, in the CLI's scheme (1 gate failed, 2 results incomplete)."""

    OK = 0
    REGRESSION = 1
    INCOMPLETE = 2


@dataclass(frozen=True)
class Observed:
    """A stored result as compare needs it: its standing status and every attempt's status."""

    status: Status
    attempts: tuple[Status, ...] = ()
    result: str | None = None
    """The result identity, so a report can point at it (`reconciler explain`)."""

    @property
    def has_verdict(self) -> bool:
        return self.status.is_verdict

    @property
    def is_flaky(self) -> bool:
        """Mixed verdicts across attempts; infrastructure errors are not verdicts and don't count.

        Fail and timeout are one outcome here: both are failures, and a test that fails once and
        times out once is failing, not flaky.
        """
        outcomes = {_outcome(s) for s in (self.status, *self.attempts) if s.is_verdict}
        return len(outcomes) > 1


def _outcome(status: Status) -> str:
    return "fail" if status in _FAILING else status.value


@dataclass(frozen=True)
class Side:
    """One side of a comparison: per profile name, what it should have and what is stored."""

    expected: Mapping[str, frozenset[TestKey]]
    observed: Mapping[str, Mapping[TestKey, Observed]] = field(default_factory=dict)

    def get(self, profile: str, key: TestKey) -> Observed | None:
        return self.observed.get(profile, {}).get(key)

    def expects(self, profile: str, key: TestKey) -> bool:
        return key in self.expected.get(profile, frozenset())


@dataclass(frozen=True)
class ComparedTest:
    profile: str
    test: str
    subtest: str
    change: Change
    a: Observed | None
    """A's stored result; None when A has none (not expected there, or missing)."""
    b: Observed | None
    missing_in: tuple[str, ...] = ()
    """For `missing`: which sides ("A", "B") lack a verdict they should have."""


@dataclass(frozen=True)
class Comparison:
    items: tuple[ComparedTest, ...]
    """Ordered by profile, then class (report order), then test and subtest."""

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.profile for item in self.items))

    def counts(self, profile: str | None = None) -> Counter[Change]:
        """Counts per class, for one profile or (None) over all of them."""
        return Counter(
            item.change for item in self.items if profile is None or item.profile == profile
        )

    def of(self, change: Change, profile: str | None = None) -> tuple[ComparedTest, ...]:
        return tuple(
            item
            for item in self.items
            if item.change is change and (profile is None or item.profile == profile)
        )

    @property
    def gate(self) -> Gate:
        counts = self.counts()
        if counts[Change.REGRESSION]:
            return Gate.REGRESSION
        if counts[Change.MISSING]:
            return Gate.INCOMPLETE
        return Gate.OK


def classify(*, a: Observed | None, b: Observed | None, in_a: bool, in_b: bool) -> Change:
    """The class of one (profile, test, subtest); see the module docstring for the order."""
    a_missing = in_a and (a is None or not a.has_verdict)
    b_missing = in_b and (b is None or not b.has_verdict)
    if a_missing or b_missing:
        return Change.MISSING
    if not in_a:
        return Change.NEW
    if not in_b:
        return Change.REMOVED
    # Both expected and both hold a verdict (checked above); the asserts narrow the types.
    assert a is not None and b is not None
    if a.is_flaky or b.is_flaky:
        return Change.FLAKY
    if Status.SKIP in (a.status, b.status):
        return Change.SKIPPED
    a_fails, b_fails = a.status in _FAILING, b.status in _FAILING
    if a_fails and b_fails:
        return Change.STILL_FAILING
    if b_fails:
        return Change.REGRESSION
    if a_fails:
        return Change.FIXED
    return Change.UNCHANGED_PASS


def compare(a: Side, b: Side, *, profiles: Iterable[str] | None = None) -> Comparison:
    """Classify every (profile, test, subtest) either side expects.

    `profiles` restricts the comparison to those names (in the order given); by default every
    profile of either side, A's first. Stored results neither side expects are ignored: a
    comparison is of what the specs ask for.
    """
    if profiles is None:
        names = list(dict.fromkeys([*a.expected, *b.expected]))
    else:
        names = list(dict.fromkeys(profiles))
    items: list[ComparedTest] = []
    for profile in names:
        keys = a.expected.get(profile, frozenset()) | b.expected.get(profile, frozenset())
        compared = []
        for key in keys:
            in_a, in_b = a.expects(profile, key), b.expects(profile, key)
            observed_a = a.get(profile, key) if in_a else None
            observed_b = b.get(profile, key) if in_b else None
            change = classify(a=observed_a, b=observed_b, in_a=in_a, in_b=in_b)
            missing_in = tuple(
                label
                for label, expected, observed in (("A", in_a, observed_a), ("B", in_b, observed_b))
                if expected and (observed is None or not observed.has_verdict)
            )
            compared.append(
                ComparedTest(
                    profile=profile,
                    test=key[0],
                    subtest=key[1],
                    change=change,
                    a=observed_a,
                    b=observed_b,
                    missing_in=missing_in,
                )
            )
        compared.sort(key=lambda item: (CHANGE_ORDER.index(item.change), item.test, item.subtest))
        items.extend(compared)
    return Comparison(items=tuple(items))
