"""From a plan to batches: what the pure `batches_from_plan` needs from specs and the store."""

from __future__ import annotations

from reconciler.adapters.store.files import ResultStore
from reconciler.core.work import BatchInputs, GroupInputs, batches_from_plan
from reconciler.model.desired import DesiredState, OriginKind, Resolution
from reconciler.model.execution import Batch, BatchDependency, SourceCheckout
from reconciler.model.plan import RUN_REASONS, Plan
from reconciler.model.specset import SpecSet


def batch_inputs(specs: SpecSet, *, desired: DesiredState, resolution: Resolution) -> BatchInputs:
    """Where workers fetch sources and harnesses, and the per-group knobs identity leaves out."""
    source_urls = {}
    for slot in desired.slots:
        if slot.origin in source_urls:
            continue
        spec = (
            specs.branches[slot.origin.name]
            if slot.origin.kind is OriginKind.BRANCH
            else specs.baselines[slot.origin.name]
        )
        repo = specs.repos[spec.repo]
        source_urls[slot.origin] = repo.fetch_url or repo.url
    tests_sources = {
        name: SourceCheckout(url=specs.harnesses[name].url or "", commit=h.commit, tree=h.revision)
        for name, h in resolution.harnesses.items()
        if h.commit is not None
    }
    dependencies = {
        name: {
            dep.name: BatchDependency(
                name=dep.name,
                source=SourceCheckout(url=dep.url, commit=dep.commit, tree=dep.tree),
                links=dep.links,
            )
            for dep in h.dependencies
            if dep.commit is not None and dep.tree is not None
        }
        for name, h in resolution.harnesses.items()
    }
    groups = {
        name: GroupInputs(
            worker_tags=frozenset(group.worker_tags), confirm_failures=group.confirm_failures
        )
        for name, group in specs.test_groups.items()
    }
    return BatchInputs(
        source_urls=source_urls,
        tests_sources=tests_sources,
        groups=groups,
        dependencies=dependencies,
    )


def batches_for(
    *,
    plan: Plan,
    desired: DesiredState,
    resolution: Resolution,
    specs: SpecSet,
    store: ResultStore,
) -> list[Batch]:
    pairs = {
        (item.test, subtest)
        for item in plan.items
        if item.reason in RUN_REASONS
        for subtest in item.to_run
    }
    durations = store.index.subtest_durations(pairs) if pairs else {}
    return batches_from_plan(
        plan=plan,
        desired=desired,
        inputs=batch_inputs(specs, desired=desired, resolution=resolution),
        durations=durations,
    )
