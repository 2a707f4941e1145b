"""The per-commit summary `apply` prints: one row per branch commit and profile."""

from __future__ import annotations

from dataclasses import replace

from reconciler.app.commit_summary import commit_counts, render_commit_summary
from reconciler.model.desired import DesiredState
from reconciler.model.results import Status

from .planning_fixtures import branch, build_desired, commit, spec_set


def test_slots_of_two_harnesses_on_one_commit_and_profile_make_one_row() -> None:
    desired = build_desired(
        spec_set(branches=[branch("a-long-branch-name")]),
        branch_commits={"a-long-branch-name": [commit(1)]},
    )
    (slot,) = desired.slots
    # The same commit and profile under a second harness (a `vm-ktest` beside a `vm-tap`).
    twin = replace(slot, harness="other", units=slot.units[:1])
    both = DesiredState(slots=(slot, twin))
    failing = {slot.units[0].unit: {"a1": Status.FAIL}}
    rows = commit_counts(both, statuses_of_unit=lambda unit: failing.get(unit, {}))
    assert len(rows) == 1
    branch_name, _, _, profile, counts = rows[0]
    assert (branch_name, profile) == ("a-long-branch-name", "default")
    # t/a (3) + t/b (1) from the first slot, t/a (3) again from the second.
    assert counts == {"fail": 2, "pending": 5}
    header, row = render_commit_summary(rows).splitlines()
    assert header.index("COMMIT") == row.index(commit(1).commit[:12])
