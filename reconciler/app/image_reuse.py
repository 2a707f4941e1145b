"""Results reused for a byte-identical boot image: a rebuild that changed nothing is not retested.

Two builds with different identities can produce the same kernel image: a profile whose new
`make_flags` only change parallelism, a config line that `olddefconfig` resolves to what it was
anyway, a toolchain renamed but not changed. The `kbuild` recipe is reproducible (timestamp from
the commit, fixed user and host, no version counter), so the image hash in each build record says
exactly that. When a build's image equals another passed build's, each of its units may take the
other build's results for the same runtime, harness revision, test and timeout: the tests would
boot the same bytes under the same inputs (the conditions that keep this true are in
`core.same_image`).

The results are *copied* under this build's own result identities, one attempt each whose message
names the build and result they came from, so every query (`log`, `show`, `compare`) and the
planner see a complete unit without knowing about images. The planner says
`reused-same-image` for such units before the copy; `apply` makes the copy instead of booting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.adapters.store.files import ResultStore
from reconciler.core.identity import SHORT, ResultIdentities, result_preimage
from reconciler.core.same_image import same_image_applies
from reconciler.model.desired import DesiredState
from reconciler.model.plan import Plan, Reason
from reconciler.model.results import Attempt, BuildStatus, ResultRecord


def copy_same_image_results(
    store: ResultStore,
    *,
    unit: str,
    unit_preimage: Mapping[str, Any],
    subtests: Sequence[str],
) -> list[str]:
    """Store, under `unit`, the verdicts a same-image build already has for `subtests`.

    Returns the subtests that got a result. A subtest no twin build holds a verdict for is left
    alone (it runs as usual). Nothing is copied when this unit's build has no image hash or no
    passed twin.
    """
    build = str(unit_preimage.get("build", ""))
    record = store.get_build(build) if build and subtests else None
    if record is None or record.status is not BuildStatus.PASS or record.image_hash is None:
        return []
    if not same_image_applies(record.preimage, unit_preimage):
        return []
    twins = [b for b in store.index.builds_with_image(record.image_hash) if b != build]
    if not twins:
        return []
    mine = ResultIdentities(unit_preimage)
    copies: dict[str, ResultRecord] = {}
    for twin in twins:
        theirs = ResultIdentities({**unit_preimage, "build": twin})
        for subtest in subtests:
            if subtest in copies:
                continue
            source = store.get_result(theirs.of(subtest))
            if source is None or not source.status.is_verdict:
                continue
            first = source.attempts[0] if source.attempts else None
            message = (
                f"reused: boot image identical to build {twin[:SHORT]}'s "
                f"(sha256 {record.image_hash[:SHORT]}); result {source.id[:SHORT]}"
            )
            copies[subtest] = ResultRecord(
                id=mine.of(subtest),
                unit=unit,
                build=build,
                test=source.test,
                subtest=subtest,
                preimage=result_preimage(unit_preimage, subtest),
                status=source.status,
                duration=source.duration,
                attempts=[
                    Attempt(
                        status=source.status,
                        duration=source.duration,
                        worker=first.worker if first else None,
                        log=first.log if first else None,
                        finished_at=first.finished_at if first else None,
                        message=message,
                    )
                ],
            )
    if copies:
        store.put_results(copies.values())
    return list(copies)


def copy_planned(store: ResultStore, *, plan: Plan, desired: DesiredState) -> int:
    """Make the copies the plan's `reused-same-image` units stand for; the number of results."""
    wanted = {item.unit for item in plan.items if item.reason is Reason.REUSED_SAME_IMAGE}
    if not wanted:
        return 0
    copied = 0
    for slot in desired.slots:
        for unit in slot.units:
            if unit.unit in wanted:
                wanted.discard(unit.unit)
                copied += len(
                    copy_same_image_results(
                        store, unit=unit.unit, unit_preimage=unit.preimage, subtests=unit.subtests
                    )
                )
    return copied
