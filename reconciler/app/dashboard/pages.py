"""Each page's data as plain JSON values: what its template renders and its JSON file holds.

One value serves both so the HTML and the JSON beside it cannot disagree. Pure: no store reads
(log tails arrive already read), no clock, so an unchanged store gives unchanged bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.app.dashboard.charts import TrendPoint
from reconciler.app.dashboard.compare_view import BranchComparison, comparison_json
from reconciler.app.dashboard.view import (
    FAILING,
    CommitView,
    DashboardView,
    OriginView,
    StatusCounts,
    TestKey,
)
from reconciler.core.status import blocked_tests_of
from reconciler.model.desired import OriginKind

Page = dict[str, Any]


def counts_json(counts: StatusCounts) -> dict[str, Any]:
    return {"state": counts.state, "counts": dict(counts.counts)}


def commit_ref(view: DashboardView, sha: str) -> dict[str, Any]:
    commit = view.commits[sha].commit
    return {"sha": sha, "subject": commit.subject, "committed_at": commit.committed_at}


def _origin_counts(view: DashboardView, origin: OriginView) -> StatusCounts:
    if not origin.commits:
        return StatusCounts.of([])
    return view.commits[origin.commits[0]].counts()


def index_page(view: DashboardView) -> Page:
    branches = [
        {
            "name": name,
            "ref": branch.ref,
            "repo": branch.repo,
            "head": commit_ref(view, branch.commits[0]) if branch.commits else None,
            "counts": counts_json(_origin_counts(view, branch)),
            "baseline": branch.baseline,
        }
        for name, branch in view.branches.items()
    ]
    baselines = [
        {
            "name": name,
            "ref": baseline.ref,
            "repo": baseline.repo,
            "head": commit_ref(view, baseline.commits[0]),
            "counts": counts_json(_origin_counts(view, baseline)),
        }
        for name, baseline in view.baselines.items()
        if baseline.commits
    ]
    return {"branches": branches, "baselines": baselines, "suspended": list(view.suspended)}


def _commit_summary(view: DashboardView, sha: str) -> dict[str, Any]:
    commit = view.commits[sha]
    return {
        **commit_ref(view, sha),
        "counts": counts_json(commit.counts()),
        "profiles": [[p, counts_json(commit.counts(p))] for p in commit.profiles],
    }


def branch_page(view: DashboardView, name: str) -> Page:
    branch = view.branches[name]
    return {
        "branch": {
            "name": name,
            "ref": branch.ref,
            "repo": branch.repo,
            "baseline": branch.baseline,
        },
        "commits": [_commit_summary(view, sha) for sha in branch.commits],
        "blocked": [
            {
                "test": item.test,
                "group": item.group,
                "reason": item.reason,
                "message": item.message,
                "commits": item.commits,
            }
            for item in blocked_tests_of(view.blocked, name)
        ],
    }


def branch_trend(view: DashboardView, name: str) -> list[TrendPoint]:
    """The branch's baseline first (when it has one), then its commits oldest first."""
    branch = view.branches[name]
    points = []
    baseline = view.baselines.get(branch.baseline or "")
    if baseline is not None and baseline.commits:
        points.append(
            TrendPoint(f"{baseline.origin.name} (baseline)", _origin_counts(view, baseline))
        )
    for sha in reversed(branch.commits):
        points.append(TrendPoint(sha[:12], view.commits[sha].counts()))
    return points


def baselines_trend(view: DashboardView) -> list[TrendPoint]:
    return [
        TrendPoint(name, _origin_counts(view, baseline))
        for name, baseline in view.baselines.items()
        if baseline.commits
    ]


def commit_page(
    view: DashboardView,
    sha: str,
    *,
    last_pass: Mapping[TestKey, tuple[str, str]],
    log_tails: Mapping[str, str],
) -> Page:
    commit: CommitView = view.commits[sha]
    rows = []
    for row in commit.rows:
        passed = last_pass.get(row.key)
        rows.append(
            {
                "profile": row.profile,
                "harness": row.harness,
                "test": row.test,
                "subtest": row.subtest,
                "status": row.status_name,
                "duration": row.duration,
                "result_id": row.result_id,
                "log_href": f"../logs/{row.result_id}.txt" if row.has_log else None,
                "attempts": [a.value for a in row.attempts],
                "flaky": row.flaky,
                "failing": row.status in FAILING,
                "message": row.message,
                "log_tail": log_tails.get(row.result_id or ""),
                "last_pass": {"branch": passed[0], "commit": passed[1]} if passed else None,
            }
        )
    return {
        "commit": {
            **commit_ref(view, sha),
            "tree": commit.commit.tree,
            "origins": [
                {"name": o.name, "branch": o.kind is OriginKind.BRANCH} for o in commit.origins
            ],
            "profiles": [[p, counts_json(commit.counts(p))] for p in commit.profiles],
        },
        "rows": rows,
    }


def compare_page(comparisons: list[BranchComparison]) -> Page:
    return {"comparisons": [comparison_json(item) for item in comparisons]}
