"""A validated set of spec documents, indexed by kind and name, with where each came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.model.specs import (
    Baseline,
    Branch,
    Harness,
    Profile,
    Repo,
    Spec,
    TestGroup,
    WorkerPool,
)


@dataclass(frozen=True, order=True)
class SourceLocation:
    """A position in a spec file; line and column are 1-based, as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class SpecSet:
    """Every document of a spec directory, after validation and reference checks."""

    spec_dir: Path
    repos: dict[str, Repo] = field(default_factory=dict)
    branches: dict[str, Branch] = field(default_factory=dict)
    test_groups: dict[str, TestGroup] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    harnesses: dict[str, Harness] = field(default_factory=dict)
    worker_pools: dict[str, WorkerPool] = field(default_factory=dict)
    locations: dict[tuple[str, str], SourceLocation] = field(default_factory=dict)
    """(kind, name) -> where the document starts."""

    def location_of(self, spec: Spec) -> SourceLocation | None:
        kind = getattr(spec, "kind", type(spec).__name__)
        return self.locations.get((kind, spec.name))

    def where(self, spec: Spec) -> str:
        """`FILE:LINE:COLUMN` of a document, for error messages."""
        location = self.location_of(spec)
        kind = getattr(spec, "kind", type(spec).__name__)
        return f"{location}: {kind} {spec.name!r}" if location else f"{kind} {spec.name!r}"
