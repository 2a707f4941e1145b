"""The status a reconciler host reports per branch, Flux-style, as plain values.

The farm admin and kernel developers read status where they already look: the spec repo. This
module decides *what* that status says; `status_render` turns it into files and the
`status_repo` adapter commits them. It is a pure function of its inputs (specs, desired state,
stored statuses, what the loop could not do), so that a pass that changes nothing produces the
very same documents and therefore no commit. That is why the documents hold no clock time at all,
not even Flux's `lastTransitionTime`: the history of the status branch already records when each
document changed (`git log -p -- <host>/branches/<branch>.json`), and carrying a timestamp over
from the previous document would make this function read its own old output.

Nothing secret may reach a status document, because the status branch is pushed wherever the
spec repo goes: no Repo URL (only the repo's *name*), no worker host or key path, no profile
environment (only the profile's *name*), and every free-text message from the loop passes
through `redact_userinfo`.

Counts per commit and profile are over the desired subtests: `pass`, `fail`, `skip`, `timeout`
(verdicts), `error` (only an infrastructure error is stored), `pending` (nothing stored yet) and
`blocked` (nothing stored and the build failed, so nothing will run until its inputs change).

Conditions of a branch, in this order of precedence (first match wins):

1. `suspend: true`: Ready=False, Reconciling=False, Stalled=False, all reason `Suspended`; its
   commits are not evaluated, so it is never green.
2. The loop could not resolve it (`stalled` input, e.g. a git error): Ready=False,
   Reconciling=False, Stalled=True, all reason `ResolutionFailed`, the loop's message.
3. No commit of it is in the desired state: all three `Unknown`, reason `NotResolved`.
4. Some subtests are `pending`: Ready=False reason `Pending`, Reconciling=True and
   Stalled=False reason `Progressing`. Stalled and Reconciling are never both True: while any
   work of the branch can still run, the branch is progressing.
5. Nothing pending, some test file the branch asks for could not be planned (its listing
   failed, or a dependency it needs did not resolve; `blocked_tests` lists them with why):
   Ready=False, Reconciling=False, Stalled=True, reason `TestsBlocked`. While other work is
   pending the branch is `Progressing` as in 4, and the blocked files are listed all the same.
6. Nothing pending, some `blocked`: Ready=False, Reconciling=False, Stalled=True, reason
   `BuildFailed`.
7. Nothing pending or blocked, some `error`: the same with reason `InfrastructureErrors` (they
   cool down and are retried by a later pass).
8. Otherwise every desired result has a verdict: Ready=True, Reconciling=False, Stalled=False,
   reason `Succeeded`. Failing tests do not make a branch un-Ready; they are in the counts and
   in the regressions.

Regressions ("new failures") are per profile: subtests whose status on the commit is `fail` or
`timeout` while the branch's baseline passed the same (test, subtest) under the same profile.
They are `None` ("not compared") when the branch has no baseline, or the baseline is not in the
desired state under that profile, or none of the baseline's results under it has a verdict yet;
an empty tuple means "compared, no new failure".
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from reconciler.core.status_documents import (
    COUNT_KEYS,
    SHORT,
    BaselineRef,
    BlockedTest,
    BranchStatus,
    CommitStatus,
    Condition,
    ConditionReason,
    ConditionStatus,
    ConditionType,
    HostStatus,
    ProfileStatus,
    Regression,
)
from reconciler.model.desired import BlockedWork, DesiredSlot, DesiredState, Origin, OriginKind
from reconciler.model.plan import Plan, Reason
from reconciler.model.results import Status
from reconciler.model.specset import SpecSet

__all__ = [
    "COUNT_KEYS",
    "SHORT",
    "BaselineRef",
    "BlockedTest",
    "BranchStatus",
    "CommitStatus",
    "Condition",
    "ConditionReason",
    "ConditionStatus",
    "ConditionType",
    "HostStatus",
    "ProfileStatus",
    "Regression",
    "blocked_builds",
    "blocked_tests_of",
    "branch_statuses",
    "describe_counts",
    "host_status",
    "redact_userinfo",
]

_FAILURES = frozenset({Status.FAIL, Status.TIMEOUT})
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\")]+")


def redact_userinfo(text: str) -> str:
    """Hide `user:token@` of any URL in a message: the status branch is pushed and read widely."""
    return _USERINFO.sub("***@", text)


def redact_urls(text: str) -> str:
    """Drop every URL of a message: status names repositories, never says where they live."""
    return _URL.sub("<url>", text)


def blocked_tests_of(blocked: Iterable[BlockedWork], branch: str) -> tuple[BlockedTest, ...]:
    """The test files `branch` asks for that could not be planned, redacted for publishing."""
    origin = Origin(OriginKind.BRANCH, branch)
    return tuple(
        sorted(
            BlockedTest(
                test=item.test or item.group or "",
                group=item.group or "",
                reason=item.reason.value,
                message=redact_urls(redact_userinfo(item.message)),
                commits=len(item.commits),
            )
            for item in blocked
            if origin in item.origins
        )
    )


def blocked_builds(plan: Plan) -> frozenset[str]:
    """Build identities the plan found failed: their missing results will not run."""
    return frozenset(b.build for b in plan.builds if b.reason is Reason.BLOCKED)


def branch_statuses(
    *,
    specs: SpecSet,
    desired: DesiredState,
    unit_statuses: Mapping[str, Mapping[str, Status]],
    blocked: frozenset[str],
    stalled: Mapping[str, str],
    host_id: str,
    observed_revision: str,
) -> tuple[BranchStatus, ...]:
    """The status of every Branch spec, sorted by name.

    `unit_statuses`: unit identity -> stored subtest -> status (absent units hold nothing);
    `blocked`: failed build identities (`blocked_builds`); `stalled`: branch name -> why the loop
    could not resolve it this pass.
    """
    branch_slots: defaultdict[str, list[DesiredSlot]] = defaultdict(list)
    baseline_slots: defaultdict[tuple[str, str], list[DesiredSlot]] = defaultdict(list)
    for slot in desired.slots:
        if slot.origin.kind is OriginKind.BRANCH:
            branch_slots[slot.origin.name].append(slot)
        else:
            baseline_slots[slot.origin.name, slot.profile].append(slot)

    statuses = []
    for name in sorted(specs.branches):
        spec = specs.branches[name]
        baseline = None
        reference: dict[str, Mapping[tuple[str, str], Status] | None] = {}
        if spec.baseline is not None:
            known = [
                slot
                for (origin, profile), slots in sorted(baseline_slots.items())
                if origin == spec.baseline
                for slot in slots
            ]
            baseline = BaselineRef(spec.baseline, known[0].commit.commit if known else None)
            reference = {
                profile: _baseline_verdicts(
                    baseline_slots.get((spec.baseline, profile), []), unit_statuses
                )
                for profile in spec.profiles
            }
        commits: tuple[CommitStatus, ...] = ()
        if not spec.suspend:
            commits = _commit_statuses(
                branch_slots.get(name, []), unit_statuses, blocked=blocked, reference=reference
            )
        counts = _sum_counts(p.counts for c in commits for p in c.profiles)
        blocked_tests = () if spec.suspend else blocked_tests_of(desired.blocked, name)
        statuses.append(
            BranchStatus(
                host=host_id,
                branch=name,
                repo=spec.repo,
                ref=spec.ref,
                observed_revision=observed_revision,
                suspended=spec.suspend,
                baseline=baseline,
                conditions=_conditions(
                    suspended=spec.suspend,
                    stalled=stalled.get(name),
                    has_commits=bool(commits),
                    counts=counts,
                    blocked_tests=len(blocked_tests),
                ),
                counts=counts,
                commits=commits,
                blocked_tests=blocked_tests,
            )
        )
    return tuple(statuses)


def host_status(
    branches: Sequence[BranchStatus],
    *,
    host_id: str,
    observed_revision: str,
    reconciler_version: str,
) -> HostStatus:
    return HostStatus(
        host=host_id,
        observed_revision=observed_revision,
        reconciler_version=reconciler_version,
        branches=tuple(sorted(branches, key=lambda b: b.branch)),
    )


def _baseline_verdicts(
    slots: Sequence[DesiredSlot], unit_statuses: Mapping[str, Mapping[str, Status]]
) -> Mapping[tuple[str, str], Status] | None:
    """(test, subtest) -> the baseline's verdict under one profile; None when nothing is known."""
    verdicts: dict[tuple[str, str], Status] = {}
    for slot in slots:
        for unit in slot.units:
            stored = unit_statuses.get(unit.unit, {})
            for subtest in unit.subtests:
                status = stored.get(subtest)
                if status is not None and status.is_verdict:
                    verdicts[unit.test, subtest] = status
    return verdicts or None


def _commit_statuses(
    slots: Sequence[DesiredSlot],
    unit_statuses: Mapping[str, Mapping[str, Status]],
    *,
    blocked: frozenset[str],
    reference: Mapping[str, Mapping[tuple[str, str], Status] | None],
) -> tuple[CommitStatus, ...]:
    # A (commit, profile) has one slot per harness; they share the build, so they merge.
    grouped: defaultdict[tuple[int, str], defaultdict[str, list[DesiredSlot]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for slot in slots:
        grouped[slot.position, slot.commit.commit][slot.profile].append(slot)
    commits = []
    for key in sorted(grouped):
        profiles = grouped[key]
        first = next(iter(profiles.values()))[0].commit
        commits.append(
            CommitStatus(
                commit=first.commit,
                subject=first.subject,
                tree=first.tree,
                profiles=tuple(
                    _profile_status(
                        profile,
                        profiles[profile],
                        unit_statuses,
                        blocked=blocked,
                        reference=reference.get(profile),
                    )
                    for profile in sorted(profiles)
                ),
            )
        )
    return tuple(commits)


def _profile_status(
    profile: str,
    slots: Sequence[DesiredSlot],
    unit_statuses: Mapping[str, Mapping[str, Status]],
    *,
    blocked: frozenset[str],
    reference: Mapping[tuple[str, str], Status] | None,
) -> ProfileStatus:
    counts: Counter[str] = Counter()
    regressions: set[Regression] = set()
    for slot in slots:
        build_failed = slot.build.id in blocked
        for unit in slot.units:
            stored = unit_statuses.get(unit.unit, {})
            for subtest in unit.subtests:
                status = stored.get(subtest)
                if status is None:
                    counts["blocked" if build_failed else "pending"] += 1
                    continue
                counts[status.value] += 1
                if (
                    reference is not None
                    and status in _FAILURES
                    and reference.get((unit.test, subtest)) is Status.PASS
                ):
                    regressions.add(Regression(unit.test, subtest, status))
    return ProfileStatus(
        profile=profile,
        build=min(slot.build.id for slot in slots)[:SHORT],
        counts={key: counts[key] for key in COUNT_KEYS},
        regressions=None if reference is None else tuple(sorted(regressions)),
    )


def _sum_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(COUNT_KEYS, 0)
    for part in parts:
        for key in COUNT_KEYS:
            total[key] += part[key]
    return total


def describe_counts(counts: Mapping[str, int]) -> str:
    """`40 results: 38 pass, 2 fail`: the non-zero counts, in the fixed column order."""
    total = sum(counts[key] for key in COUNT_KEYS)
    parts = [f"{counts[key]} {key}" for key in COUNT_KEYS if counts[key]]
    noun = "result" if total == 1 else "results"
    return f"{total} {noun}: {', '.join(parts)}" if parts else "no results desired"


def _conditions(
    *,
    suspended: bool,
    stalled: str | None,
    has_commits: bool,
    counts: Mapping[str, int],
    blocked_tests: int = 0,
) -> tuple[Condition, ...]:
    true, false, unknown = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
    if suspended:
        why = "suspend: true in the Branch spec; nothing is evaluated or scheduled"
        return _three(ConditionReason.SUSPENDED, why, ready=false, reconciling=false, stalled=false)
    if stalled is not None:
        why = redact_userinfo(stalled)
        return _three(
            ConditionReason.RESOLUTION_FAILED, why, ready=false, reconciling=false, stalled=true
        )
    if not has_commits:
        why = "no commit of this branch is in the desired state of this pass"
        return _three(
            ConditionReason.NOT_RESOLVED, why, ready=unknown, reconciling=unknown, stalled=unknown
        )
    summary = describe_counts(counts)
    if counts["pending"]:
        pending = f"{counts['pending']} of {sum(counts.values())} results pending"
        return (
            Condition(
                ConditionType.READY, false, ConditionReason.PENDING, f"{pending} ({summary})"
            ),
            Condition(ConditionType.RECONCILING, true, ConditionReason.PROGRESSING, pending),
            Condition(ConditionType.STALLED, false, ConditionReason.PROGRESSING, pending),
        )
    if blocked_tests:
        files = f"{blocked_tests} test file{'s' if blocked_tests != 1 else ''}"
        why = f"{files} could not be planned; see blocked_tests ({summary})"
        return _three(
            ConditionReason.TESTS_BLOCKED, why, ready=false, reconciling=false, stalled=true
        )
    if counts["blocked"]:
        why = f"builds failed; their results wait for changed build inputs ({summary})"
        return _three(
            ConditionReason.BUILD_FAILED, why, ready=false, reconciling=false, stalled=true
        )
    if counts["error"]:
        why = f"infrastructure errors; retried after a cool-down ({summary})"
        return _three(
            ConditionReason.INFRASTRUCTURE_ERRORS, why, ready=false, reconciling=false, stalled=true
        )
    return _three(ConditionReason.SUCCEEDED, summary, ready=true, reconciling=false, stalled=false)


def _three(
    reason: ConditionReason,
    message: str,
    *,
    ready: ConditionStatus,
    reconciling: ConditionStatus,
    stalled: ConditionStatus,
) -> tuple[Condition, ...]:
    return (
        Condition(ConditionType.READY, ready, reason, message),
        Condition(ConditionType.RECONCILING, reconciling, reason, message),
        Condition(ConditionType.STALLED, stalled, reason, message),
    )
