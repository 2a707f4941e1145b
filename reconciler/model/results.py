"""Statuses and the immutable records the store keeps: results and builds.

Verdicts (`pass`, `fail`, `skip`, `timeout`) say something about the code under test; `error`
says something about the infrastructure and is retried, never counted as a test failure.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

RECORD_SCHEMA_VERSION = 1


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    TIMEOUT = "timeout"
    ERROR = "error"

    @property
    def is_verdict(self) -> bool:
        return self is not Status.ERROR


VERDICTS: frozenset[Status] = frozenset(s for s in Status if s.is_verdict)


class BuildStatus(StrEnum):
    PASS = "pass"
    """Built: its tests can run."""
    FAIL = "fail"
    """The build failed: a verdict on the build; its tests are blocked until inputs change."""
    ERROR = "error"
    """Infrastructure broke during the build: not a verdict, retried."""


class Attempt(BaseModel):
    """One run of a result identity. The first verdict stands; later attempts sit beside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status
    duration: float | None = Field(default=None, ge=0)
    worker: str | None = None
    log: Hex64 | None = None
    """sha256 of the log's uncompressed bytes; the blob is `logs/<2 hex>/<sha256>.br` (brotli)."""
    finished_at: datetime | None = None
    message: str | None = None
    """Skip reason, failure summary, or the infrastructure error."""


class ResultRecord(BaseModel):
    """Everything known about one result identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA_VERSION
    id: Hex64
    unit: Hex64
    """Identity of the (build, runtime, harness revision, test) unit the subtest belongs to."""
    build: Hex64
    test: str
    subtest: str
    preimage: dict[str, Any]
    """The identity inputs, so two results can be compared input by input."""
    status: Status
    """The first verdict (or `error` while no verdict exists)."""
    duration: float | None = Field(default=None, ge=0)
    attempts: list[Attempt] = Field(default_factory=list)
    """Every attempt in order, including the one that gave `status`."""
    imported_from: str | None = None
    """Set when the result came from an importer rather than a run."""


class BuildRecord(BaseModel):
    """The outcome of one build identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA_VERSION
    id: Hex64
    preimage: dict[str, Any]
    status: BuildStatus
    resolved_config_hash: Hex64 | None = None
    image_hash: Hex64 | None = None
    log: Hex64 | None = None
    duration: float | None = Field(default=None, ge=0)
    worker: str | None = None
    finished_at: datetime | None = None
