"""The identity of an imported result: the plan's own, or one no plan can ever ask for.

Old results are worth reusing only where they answer exactly what the plan asks, so there are
two ways to place them and nothing in between:

- **Matched** (`MatchedPlacer`): the user names the slot the results belong to (branch or
  baseline, commit, profile, optionally test group); the planner computes that slot's desired
  units, and each imported test gets the identity of the desired unit and subtest it names. The
  user asserts that the results came from that tree, config and harness; the claim is written
  into each attempt's message and `imported_from` says where the files came from. A test the
  slot does not ask for is skipped, never stored under a guessed identity.
- **Unmatched** (`UnmatchedPlacer`): without specs, preimages hold what the command line and the
  files say (kernel tree or version, a config file's normalised hash, arch, fstests section and
  fstype, ...), every other input as the explicit value `"unknown"`, and an `"imported"` marker
  naming the importer. Planned preimages never hold that marker, so these results can never be
  mistaken for planned ones; they are archives that queries and compare read by their inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.app.importers.records import Placement
from reconciler.core.identity import (
    IDENTITY_VERSION,
    canonical_json,
    identity_of,
    normalize_kconfig,
    sha256_hex,
)
from reconciler.model.desired import DesiredSlot, DesiredUnit
from reconciler.model.errors import UserError
from reconciler.model.specs import Runtime

UNKNOWN = "unknown"
"""The value of every identity input an unmatched import cannot know."""

KeyOf = Callable[[str, str], str]
"""(test, subtest) of a desired unit -> the key the imported files name it by."""


class MatchedPlacer:
    """Places imported keys on the units of one desired slot, exactly as planned."""

    def __init__(self, slot: DesiredSlot, *, key_of: KeyOf) -> None:
        self.slot = slot
        self._by_key: dict[str, list[tuple[DesiredUnit, str]]] = {}
        for unit in slot.units:
            for subtest in unit.subtests:
                self._by_key.setdefault(key_of(unit.test, subtest), []).append((unit, subtest))

    def place(self, key: str) -> Placement | None:
        found = self._by_key.get(key)
        if not found:
            return None
        if len(found) > 1:
            groups = sorted({unit.group for unit, _ in found})
            raise UserError(
                f"{key} is asked for by {len(found)} units of this slot (test groups "
                f"{', '.join(groups)}), which differ in timeout or harness",
                hint="name the test group the results were run for with --group",
            )
        unit, subtest = found[0]
        return Placement(
            build=self.slot.build.id,
            build_preimage=self.slot.build.preimage,
            unit=unit.unit,
            unit_fields=unit.preimage,
            test=unit.test,
            subtest=subtest,
        )


@dataclass(frozen=True)
class KnownInputs:
    """What an unmatched import is told about the runs, each None when not known."""

    kernel_tree: str | None = None
    kernel_version: str | None = None
    kernel_commit: str | None = None
    config_sha256: str | None = None
    arch: str | None = None
    runtime: Mapping[str, str] = field(default_factory=dict)
    """Runtime inputs given: `fstype`, `section`, `mkfs_options`, `mount_options`."""

    def with_values(self, **values: str | None) -> KnownInputs:
        """A copy with more inputs known (those the files themselves say)."""
        runtime = dict(self.runtime)
        fields: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            if name in Runtime.model_fields:
                runtime[name] = value
            else:
                fields[name] = value
        return KnownInputs(**{**self.__dict__, **fields, "runtime": runtime})

    def check(self) -> None:
        if self.kernel_tree is None and self.kernel_version is None and self.kernel_commit is None:
            raise UserError(
                "an import without specs needs to know which kernel the results are of",
                hint="give --kernel-tree HASH or --kernel-version STR, or import against specs"
                " with --specs DIR --branch B --commit REV --profile P",
            )


def unmatched_build_preimage(known: KnownInputs, *, kind: str) -> dict[str, Any]:
    config: Any = {"sha256": known.config_sha256} if known.config_sha256 else UNKNOWN
    preimage: dict[str, Any] = {
        "v": IDENTITY_VERSION,
        "kind": "build",
        "imported": kind,
        "source_tree": known.kernel_tree or UNKNOWN,
        "arch": known.arch or UNKNOWN,
        "config": config,
        "toolchain": UNKNOWN,
        "make_flags": UNKNOWN,
        "env": UNKNOWN,
        "recipe": UNKNOWN,
    }
    if known.kernel_version is not None:
        preimage["kernel_version"] = known.kernel_version
    if known.kernel_commit is not None:
        preimage["source_commit"] = known.kernel_commit
    return preimage


def unmatched_runtime(known: KnownInputs) -> dict[str, Any]:
    # Every runtime input the specs could set, so an unknown one reads as unknown, not unset.
    return {name: known.runtime.get(name, UNKNOWN) for name in sorted(Runtime.model_fields)}


class UnmatchedPlacer:
    """Places every imported key under archival identities built from `known`."""

    def __init__(
        self,
        known: KnownInputs,
        *,
        kind: str,
        harness_type: str,
        split: Callable[[str], tuple[str, str]],
    ) -> None:
        self._kind = kind
        self._split = split
        self._build = identity_of(unmatched_build_preimage(known, kind=kind))
        self._runtime = unmatched_runtime(known)
        self._harness = {"type": harness_type, "revision": UNKNOWN}
        self._units: dict[str, tuple[str, dict[str, Any]]] = {}

    def place(self, key: str) -> Placement:
        test, subtest = self._split(key)
        unit = self._units.get(test)
        if unit is None:
            fields = {
                "v": IDENTITY_VERSION,
                "imported": self._kind,
                "build": self._build.hex,
                "runtime": self._runtime,
                "harness": self._harness,
                "test": test,
                "timeout": UNKNOWN,
            }
            unit = self._units[test] = (identity_of({**fields, "kind": "unit"}).hex, fields)
        return Placement(
            build=self._build.hex,
            build_preimage=self._build.preimage,
            unit=unit[0],
            unit_fields=unit[1],
            test=test,
            subtest=subtest,
        )


def config_file_sha256(path: Path) -> str:
    """Hash of a kernel `.config` (or fragment), normalised as build identity normalises config:
    `# CONFIG_X is not set` read as `CONFIG_X=n`, comments and blank lines dropped, sorted,
    `LOCALVERSION` dropped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            lines.append(f"{line[2:].removesuffix(' is not set')}=n")
        elif line and not line.startswith("#") and "=" in line:
            lines.append(line)
    if not lines:
        raise UserError(f"config file {path} sets no option", hint="pass a kernel .config")
    return sha256_hex(canonical_json(normalize_kconfig(lines)))
