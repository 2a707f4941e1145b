"""`reconciler export kcidb`: the tracked commits' stored results as a KCIDB v5 report.

KCIDB is where kernel CI systems pool their results (checkouts → builds → tests). The report
covers what the specs ask for now: each branch's window of commits and each baseline. Only stored
things are exported: a subtest that never ran is absent (KCIDB reads absence as "missing"), and a
build with neither a record nor results is left out. Every object id is `<origin>:<our id>` and
the full identity stays in `misc`, so a KCIDB row leads back to `reconciler explain`.

Several of our objects can meet one KCIDB object: two branches at one commit share a checkout,
two commits with one tree share a build. The first slot in desired-state order names the object;
the others are listed in its `misc`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.atomic import write_atomic
from reconciler.adapters.store.files import ResultStore
from reconciler.app.planning import Planner, Workspace
from reconciler.core.toolchain import toolchain_label
from reconciler.model.desired import DesiredSlot, DesiredState, OriginKind
from reconciler.model.errors import UserError
from reconciler.model.kcidb import (
    KCIDB_MAJOR,
    KCIDB_MINOR,
    kcidb_build_status,
    kcidb_status,
)
from reconciler.model.results import Attempt, ResultRecord
from reconciler.model.specset import SpecSet

DEFAULT_ORIGIN = "reconciler"
# KCIDB's own patterns (kcidb_io schema v5): an origin, and one component of a test path.
_ORIGIN = re.compile(r"^[a-z0-9_]+$")
_PATH_SEPARATORS = re.compile(r"[/.:]+")
_NOT_PATH_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")


@dataclass(frozen=True)
class KcidbOptions:
    origin: str = DEFAULT_ORIGIN
    log_url_base: str | None = None
    """Where `reconciler dashboard` output is published: logs are `<base>/logs/<id>.txt`."""

    def __post_init__(self) -> None:
        if not _ORIGIN.match(self.origin):
            raise UserError(
                f"KCIDB origin {self.origin!r} is not valid",
                hint="use lowercase letters, digits and '_' only, e.g. --origin my_farm",
            )


def kcidb_test_path(test: str, subtest: str) -> str:
    """KCIDB's dotted path of a subtest: `tests/arith.t` + `subtract` → `tests.arith.t.subtract`.

    KCIDB paths are dot-separated components of `[a-zA-Z0-9_-]`; our separators (`/`, `.`,
    `:`) become dots and any other run of characters becomes `_` (trimmed at the ends). Lossy
    by design; the exact test and subtest names travel in `misc`.
    """
    parts = (
        _NOT_PATH_CHARS.sub("_", part).strip("_")
        for part in _PATH_SEPARATORS.split(f"{test}/{subtest}")
    )
    return ".".join(part for part in parts if part)


def public_repository_url(url: str) -> str | None:
    """The URL KCIDB accepts (https only), without `user:token@`; None for any other URL.

    Local paths and ssh/git URLs would tell a KCIDB reader nothing it could fetch (and a path
    leaks the farm's layout), so they are left out rather than mangled.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return urlunsplit(("https", host, parts.path, parts.query, ""))


def kcidb_report(
    *, specs: SpecSet, desired: DesiredState, store: ResultStore, options: KcidbOptions
) -> dict[str, Any]:
    """The KCIDB v5 report of every stored build and result `desired` asks for."""
    report = _Report(specs=specs, store=store, options=options)
    for slot in desired.slots:
        report.add_slot(slot)
    return {
        "version": {"major": KCIDB_MAJOR, "minor": KCIDB_MINOR},
        "checkouts": list(report.checkouts.values()),
        "builds": list(report.builds.values()),
        "tests": list(report.tests.values()),
    }


class _Report:
    def __init__(self, *, specs: SpecSet, store: ResultStore, options: KcidbOptions) -> None:
        self.specs = specs
        self.store = store
        self.options = options
        self.checkouts: dict[str, dict[str, Any]] = {}
        self.builds: dict[str, dict[str, Any]] = {}
        self.tests: dict[str, dict[str, Any]] = {}

    def _id(self, local: str) -> str:
        return f"{self.options.origin}:{local}"

    def add_slot(self, slot: DesiredSlot) -> None:
        checkout_id = self._add_checkout(slot)
        results = [row for unit in slot.units for row in self.store.results_for_unit(unit.unit)]
        build_id = self._add_build(slot, checkout_id=checkout_id, has_results=bool(results))
        if build_id is None:
            return
        for row in results:
            test_id = self._id(row.id)
            if test_id in self.tests:
                continue
            record = self.store.get_result(row.id)
            if record is not None:
                self.tests[test_id] = self._test(record, build_id=build_id, slot=slot)

    def _add_checkout(self, slot: DesiredSlot) -> str:
        checkout_id = self._id(slot.commit.commit)
        checkout = self.checkouts.get(checkout_id)
        if slot.origin.kind is OriginKind.BRANCH:
            repo_name = self.specs.branches[slot.origin.name].repo
        else:
            repo_name = self.specs.baselines[slot.origin.name].repo
        if checkout is None:
            checkout = {
                "id": checkout_id,
                "origin": self.options.origin,
                "tree_name": repo_name,
                "git_commit_hash": slot.commit.commit,
                "valid": True,
            }
            url = public_repository_url(self.specs.repos[repo_name].url)
            if url is not None:
                checkout["git_repository_url"] = url
            checkout["misc"] = {
                "subject": slot.commit.subject,
                "tree": slot.commit.tree,
                "origins": [],
            }
            self.checkouts[checkout_id] = checkout
        _append_unique(checkout["misc"]["origins"], str(slot.origin))
        # A commit both in a branch window and pinned by a baseline gets both descriptions.
        if slot.origin.kind is OriginKind.BRANCH:
            if "git_repository_branch" not in checkout:
                checkout["git_repository_branch"] = self.specs.branches[slot.origin.name].ref
                checkout["git_repository_branch_tip"] = slot.position == 0
        else:
            checkout.setdefault("git_commit_name", self.specs.baselines[slot.origin.name].ref)
        return checkout_id

    def _add_build(self, slot: DesiredSlot, *, checkout_id: str, has_results: bool) -> str | None:
        build_id = self._id(slot.build.id)
        existing = self.builds.get(build_id)
        if existing is not None:
            _append_unique(existing["misc"]["profiles"], slot.profile)
            return build_id
        record = self.store.get_build(slot.build.id)
        if record is None and not has_results:
            return None
        preimage = slot.build.preimage
        build: dict[str, Any] = {
            "id": build_id,
            "origin": self.options.origin,
            "checkout_id": checkout_id,
            "architecture": str(preimage.get("arch", "")),
            "compiler": toolchain_label(preimage.get("toolchain")),
            "config_name": slot.profile,
            "misc": {"identity": slot.build.id, "profiles": [slot.profile]},
        }
        if record is not None:
            build["status"] = kcidb_build_status(record.status).value
            build.update(_timing(record.finished_at, record.duration))
            if record.worker:
                build["misc"]["worker"] = record.worker
        self.builds[build_id] = build
        return build_id

    def _test(self, record: ResultRecord, *, build_id: str, slot: DesiredSlot) -> dict[str, Any]:
        verdict = _verdict_attempt(record)
        test: dict[str, Any] = {
            "id": self._id(record.id),
            "origin": self.options.origin,
            "build_id": build_id,
            "path": kcidb_test_path(record.test, record.subtest),
            "status": kcidb_status(record.status).value,
        }
        if record.duration is not None:
            test["duration"] = record.duration
        if verdict is not None:
            test.update(_timing(verdict.finished_at, verdict.duration))
            if verdict.message:
                test["comment"] = verdict.message
            if verdict.log and self.options.log_url_base:
                base = self.options.log_url_base.rstrip("/")
                test["log_url"] = f"{base}/logs/{record.id}.txt"
        test["misc"] = {
            "test": record.test,
            "subtest": record.subtest,
            "status": record.status.value,
            "attempts": [attempt.status.value for attempt in record.attempts],
            "profile": slot.profile,
            "harness": slot.harness,
        }
        return test


def _verdict_attempt(record: ResultRecord) -> Attempt | None:
    """The attempt whose status the record holds (the first verdict stands)."""
    return next((a for a in record.attempts if a.status is record.status), None)


def _timing(finished_at: datetime | None, duration: float | None) -> dict[str, Any]:
    if finished_at is None:
        return {}
    started = finished_at - timedelta(seconds=duration or 0.0)
    return {"start_time": started.isoformat()}


def _append_unique(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def run_export_kcidb(
    workspace: Workspace, *, options: KcidbOptions, out: Path | None, fetch: bool = True
) -> dict[str, Any]:
    """Resolve the specs, read the store, and write the report to `out` (atomically) when given."""
    specs = load_specs(workspace.spec_dir)
    planner = Planner(
        git=GitResolver(workspace.git_cache, fetch=fetch),
        cache=SqliteEnumerationCache(workspace.enumeration_cache),
        dependency_root=workspace.dependency_trees,
    )
    desired = planner.desired(specs)
    with ResultStore(workspace.store_dir) as store:
        report = kcidb_report(specs=specs, desired=desired, store=store, options=options)
    if out is not None:
        write_atomic(out, render_report(report).encode())
    return report


def render_report(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def report_counts(report: dict[str, Any]) -> Iterator[tuple[str, int]]:
    for kind in ("checkouts", "builds", "tests"):
        yield kind, len(report[kind])
