"""How a new record for an identity that is already stored combines with the stored one.

"First verdict stands": a verdict is never silently replaced. A later attempt is recorded beside
it (so mixed verdicts across attempts show a flaky test), and an infrastructure `error` gives way
to the first real verdict. Pure functions, so the rules are tested as values.
"""

from __future__ import annotations

import logging

from reconciler.core.identity import identity_of
from reconciler.model.errors import UserError
from reconciler.model.results import BuildRecord, BuildStatus, ResultRecord, Status

log = logging.getLogger(__name__)


def check_identity(record: ResultRecord | BuildRecord) -> None:
    """Refuse a record whose id is not the hash of its preimage: it would be stored under a key
    that no desired state can ever ask for, and `explain` would show inputs it was not run on."""
    expected = identity_of(record.preimage).hex
    if record.id != expected:
        kind = "result" if isinstance(record, ResultRecord) else "build"
        raise UserError(
            f"{kind} id {record.id} is not the identity of its preimage (sha256 is {expected})",
            hint="compute ids with reconciler.core.identity (identity_of / result_identity)",
        )


def merge_result(stored: ResultRecord | None, new: ResultRecord) -> ResultRecord:
    """The record to keep when `new` arrives for an id that may already hold `stored`."""
    if stored is None:
        return new
    described = (stored.unit, stored.build, stored.test, stored.subtest)
    if (new.unit, new.build, new.test, new.subtest) != described:
        # Same id, same preimage, yet different unit/build/test: one of the writers computed
        # its fields wrongly. Storing either silently would corrupt the index counts.
        raise UserError(
            f"result {new.id} disagrees with the stored record on unit/build/test/subtest",
            hint="the writer derived these fields from something other than the preimage",
        )
    attempts = list(stored.attempts)
    attempts.extend(attempt for attempt in new.attempts if attempt not in stored.attempts)
    update: dict[str, object] = {"attempts": attempts}
    if stored.status is Status.ERROR and new.status.is_verdict:
        # The first verdict arrives: status and its duration come from the new record.
        update["status"] = new.status
        update["duration"] = new.duration
    if stored.imported_from is None and new.imported_from is not None:
        update["imported_from"] = new.imported_from
    # Validated construction, not model_copy: a merged record is checked like a new one.
    return ResultRecord.model_validate({**stored.model_dump(), **update})


def merge_build(stored: BuildRecord | None, new: BuildRecord) -> BuildRecord:
    """Builds keep no attempt list, so the first verdict's record is kept whole."""
    if stored is None:
        return new
    if stored.status is BuildStatus.ERROR and new.status is not BuildStatus.ERROR:
        return new
    if stored.status is not BuildStatus.ERROR and new.status not in (
        stored.status,
        BuildStatus.ERROR,
    ):
        # BuildRecord has nowhere to keep a second verdict; say so rather than drop it silently.
        log.warning(
            "build %s: keeping the first verdict %s, dropping a later %s",
            stored.id,
            stored.status.value,
            new.status.value,
        )
    return stored
