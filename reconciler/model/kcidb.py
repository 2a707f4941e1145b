"""How our statuses read in KCIDB, the kernel CI reporting database: one catalogue table.

KCIDB (schema v5) has six statuses, listed in its priority order FAIL, ERROR, MISS, PASS, DONE,
SKIP. Ours are fewer and say more about *why*, so the mapping loses a little, and the original
status always travels beside it in the exported object's `misc`. The table lives here, as data,
so the exporter, its tests and any future importer read the same rows instead of deriving names
from strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from reconciler.model.results import BuildStatus, Status

KCIDB_MAJOR: Final = 5
KCIDB_MINOR: Final = 3
"""The schema version `export kcidb` writes (kcidb-io's `schema.V5_3`)."""


class KcidbStatus(StrEnum):
    FAIL = "FAIL"
    ERROR = "ERROR"
    MISS = "MISS"
    PASS = "PASS"
    DONE = "DONE"
    SKIP = "SKIP"


KCIDB_STATUS: Final[Mapping[Status, KcidbStatus]] = MappingProxyType(
    {
        Status.PASS: KcidbStatus.PASS,
        Status.FAIL: KcidbStatus.FAIL,
        Status.SKIP: KcidbStatus.SKIP,
        # A timeout counts as a failure (DESIGN "Statuses"): the code under test did not finish.
        Status.TIMEOUT: KcidbStatus.FAIL,
        # Ours is an infrastructure failure with the code's status unknown, which is what
        # KCIDB's ERROR says ("the test didn't complete ... status of the tested code is
        # unknown"). MISS is KCIDB's "never ran"; a subtest we never ran has no stored result
        # and is not exported at all (KCIDB: absent data means "missing").
        Status.ERROR: KcidbStatus.ERROR,
    }
)
"""Test and build statuses → KCIDB status. Build statuses are a subset of test statuses
(pass, fail, error) and are mapped through the same rows by `kcidb_build_status`."""


def kcidb_status(status: Status) -> KcidbStatus:
    return KCIDB_STATUS[status]


def kcidb_build_status(status: BuildStatus) -> KcidbStatus:
    # Same token, same meaning: a failed build is a verdict on the code, an errored one is not.
    return KCIDB_STATUS[Status(status.value)]
