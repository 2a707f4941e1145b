"""The compare page: each branch's newest commit against its baseline, per profile.

Classified by `reconciler compare` itself (`app.compare` selects the sides exactly as the CLI's
`baseline:NAME` and `BRANCH` do, `core.compare` classifies), so the page and the CLI gate can
never disagree about what regressed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.adapters.store.files import ResultStore
from reconciler.app.compare import BASELINE_PREFIX, compare_selected, gate_line, select
from reconciler.core.compare import CHANGE_ORDER, Change, Comparison, Observed
from reconciler.model.desired import DesiredState
from reconciler.model.errors import UserError
from reconciler.model.specset import SpecSet

# Listed test by test; an unchanged pass is only counted (it is most of any comparison).
LISTED = tuple(change for change in CHANGE_ORDER if change is not Change.UNCHANGED_PASS)


@dataclass(frozen=True)
class BranchComparison:
    branch: str
    baseline: str
    head: str
    """The branch's newest commit (side B)."""
    base: str
    """The baseline's commit (side A)."""
    comparison: Comparison


def compare_branches(
    *, specs: SpecSet, desired: DesiredState, store: ResultStore
) -> list[BranchComparison]:
    """Every tracked branch that names a baseline, compared with it."""
    comparisons = []
    for name, branch in sorted(specs.branches.items()):
        if branch.baseline is None or name in desired.suspended:
            continue
        try:
            base = select(desired, f"{BASELINE_PREFIX}{branch.baseline}")
            head = select(desired, name)
        except UserError:
            continue  # a side the desired state lacks (nothing resolved): nothing to compare
        comparison = compare_selected(base, head, store=store)
        comparisons.append(
            BranchComparison(
                name, branch.baseline, head.commit.commit, base.commit.commit, comparison
            )
        )
    return comparisons


def _status(observed: Observed | None) -> str | None:
    return None if observed is None else observed.status.value


def comparison_json(item: BranchComparison) -> dict[str, Any]:
    comparison = item.comparison
    profiles = []
    for profile in comparison.profiles:
        counts = comparison.counts(profile)
        profiles.append(
            {
                "profile": profile,
                "counts": {change.value: counts[change] for change in CHANGE_ORDER},
                "changes": {
                    change.value: [
                        {
                            "test": test.test,
                            "subtest": test.subtest,
                            "baseline": _status(test.a),
                            "head": _status(test.b),
                        }
                        for test in comparison.of(change, profile)
                    ]
                    for change in LISTED
                },
            }
        )
    return {
        "branch": item.branch,
        "baseline": item.baseline,
        "head": item.head,
        "base": item.base,
        "gate": gate_line(comparison),
        "profiles": profiles,
    }
