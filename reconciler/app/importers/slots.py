"""The one desired slot a matched import names, computed by the planner itself.

The user names a branch (with a commit) or a baseline (its pinned commit, or a commit that must
be the same), a profile and optionally a test group. Identities do not depend on who asks, so
the slot is computed by `Planner.desired` on the spec set narrowed to a single baseline pinned
at that commit, with that profile and the origin's test groups of the importer's harness type:
the same code, the same inputs, the same identities the plan asks for; and a commit older than
a branch's `max_commits` window can be imported too (a baseline may pin it later).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.app.planning import Planner, Workspace
from reconciler.model.desired import DesiredSlot
from reconciler.model.errors import UserError
from reconciler.model.specs import Baseline, HarnessType
from reconciler.model.specset import SpecSet

IMPORT_ORIGIN = "import"
"""Name of the narrowed spec set's one baseline; never stored (identities have no origin)."""


@dataclass(frozen=True)
class MatchRequest:
    branch: str | None = None
    baseline: str | None = None
    commit: str | None = None
    profile: str | None = None
    group: str | None = None
    fetch: bool = True


def desired_slot(
    request: MatchRequest, *, workspace: Workspace, harness_type: HarnessType
) -> DesiredSlot:
    specs = load_specs(workspace.spec_dir)
    planner = Planner(
        git=GitResolver(workspace.git_cache, fetch=request.fetch),
        cache=SqliteEnumerationCache(workspace.enumeration_cache),
        dependency_root=workspace.dependency_trees,
    )
    narrowed, pinned = narrowed_specs(specs, request, harness_type=harness_type)
    slots = planner.desired(narrowed).slots
    if pinned is not None:
        # --baseline with --commit: the commit must be the one the baseline pins.
        commit = planner.resolution.baselines[IMPORT_ORIGIN].commit.commit
        baseline = specs.baselines[pinned]
        asked = planner.git.resolve_commit(
            repo=specs.repos[baseline.repo], ref=baseline.ref, asked_by=specs.where(baseline)
        )
        if asked.commit != commit:
            raise UserError(
                f"baseline {pinned!r} pins {asked.commit[:12]} ({baseline.ref}), not {commit[:12]}",
                hint="drop --commit to import for the pinned commit, or use --branch",
            )
    if len(slots) != 1:
        harnesses = ", ".join(sorted(slot.harness for slot in slots)) or "none"
        raise UserError(
            f"the import matches {len(slots)} slots (harnesses: {harnesses})",
            hint="name the test group the results were run for with --group",
        )
    return slots[0]


def narrowed_specs(
    specs: SpecSet, request: MatchRequest, *, harness_type: HarnessType
) -> tuple[SpecSet, str | None]:
    """The spec set asking for exactly the named slot; and the baseline to check --commit
    against (None when there is nothing to check)."""
    if (request.branch is None) == (request.baseline is None):
        raise UserError("name where the results belong with --branch B or --baseline NAME")
    if request.branch is not None:
        branch = specs.branches.get(request.branch)
        if branch is None:
            raise _unknown("branch", request.branch, specs.branches)
        if request.commit is None:
            raise UserError(
                f"--branch {request.branch} needs --commit REV: which commit the results are of"
            )
        repo, ref, groups, profiles = (
            branch.repo,
            request.commit,
            branch.test_groups,
            branch.profiles,
        )
        pinned = None
    else:
        assert request.baseline is not None
        baseline = specs.baselines.get(request.baseline)
        if baseline is None:
            raise _unknown("baseline", request.baseline, specs.baselines)
        repo, groups, profiles = baseline.repo, baseline.test_groups, baseline.profiles
        ref = request.commit or baseline.ref
        pinned = request.baseline if request.commit is not None else None
    origin = f"branch {request.branch!r}" if request.branch else f"baseline {request.baseline!r}"
    profile = _chosen_profile(request.profile, profiles, origin=origin)
    matching = [
        group
        for group in groups
        if specs.harnesses[specs.test_groups[group].harness].type is harness_type
    ]
    if not matching:
        raise UserError(f"{origin} has no test group run by a {harness_type.value} harness")
    if request.group is not None:
        if request.group not in matching:
            raise UserError(
                f"{origin} has no {harness_type.value} test group {request.group!r}",
                hint=f"its {harness_type.value} test groups: {', '.join(matching)}",
            )
        matching = [request.group]
    synthetic = Baseline(
        kind="Baseline",
        name=IMPORT_ORIGIN,
        repo=repo,
        ref=ref,
        test_groups=matching,
        profiles=[profile],
    )
    narrowed = dataclasses.replace(specs, branches={}, baselines={IMPORT_ORIGIN: synthetic})
    return narrowed, pinned


def _chosen_profile(profile: str | None, profiles: list[str], *, origin: str) -> str:
    if profile is None:
        if len(profiles) == 1:
            return profiles[0]
        raise UserError(
            f"{origin} runs several profiles",
            hint=f"choose one with --profile: {', '.join(profiles)}",
        )
    if profile not in profiles:
        raise UserError(
            f"{origin} does not run profile {profile!r}", hint=f"it runs: {', '.join(profiles)}"
        )
    return profile


def _unknown(kind: str, name: str, known: Mapping[str, object]) -> UserError:
    names = ", ".join(sorted(known)) or "none"
    return UserError(f"the specs have no {kind} {name!r}", hint=f"known: {names}")
