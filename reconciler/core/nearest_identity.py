"""The nearest known identity of a unit that must run, and the inputs that separate them.

A reviewer asking "why is this not reused?" wants the answer in a kernel developer's words
("toolchain changed", "new profile"), not two hashes. Identities keep their preimages, so the
inputs that differ can be named exactly (`diff_preimages`); the phrases come from one table,
`INPUT_PHRASES`. The nearest identity of a head unit is:

1. the same identity desired at base: the change did not cause this work ("already planned at
   base"); it is simply not stored yet;
2. else the base unit of the same (origin, commit, profile name, test): the reason lists the
   inputs that changed, e.g. "build environment changed" after editing a profile's CFLAGS;
3. else the unit is new to its origin: "new branch", "new commit", "new profile" or "new test"
   (the first that applies), and the nearest is a *stored* unit with the same test under the same
   commit, any profile or origin, the one with fewest differing inputs; none when nothing like
   it is stored. Stored units are those of either desired state that the snapshot holds, so no
   extra store query is needed.

Pure, like the rest of core.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.core.identity import InputDifference, diff_preimages
from reconciler.model.desired import (
    DesiredSlot,
    DesiredState,
    DesiredUnit,
    Origin,
    StoreSnapshot,
)

INPUT_PHRASES: tuple[tuple[str, str], ...] = (
    ("build.source_tree", "source changed"),
    ("build.arch", "arch changed"),
    ("build.config.fragment", "config fragment changed"),
    ("build.config.base", "base config changed"),
    ("build.config", "config changed"),
    ("build.toolchain", "toolchain changed"),
    ("build.make_flags", "make flags changed"),
    ("build.env", "build environment changed"),
    ("build.recipe", "build recipe changed"),
    ("build.v", "identity version changed"),
    ("v", "identity version changed"),
    ("runtime.*", "runtime {key} changed"),
    ("runtime", "runtime changed"),
    ("harness.revision", "harness revision changed"),
    ("harness.run", "harness command changed"),
    ("harness.list", "harness command changed"),
    ("harness.output", "harness output format changed"),
    ("harness.type", "harness type changed"),
    ("harness", "harness changed"),
    ("timeout", "timeout changed"),
    ("test", "new test"),
)

ALREADY_PLANNED = "already planned at base"
NEW_BRANCH = "new branch"
NEW_COMMIT = "new commit"
NEW_PROFILE = "new profile"
NEW_TEST = "new test"
IDENTITY_CHANGED = "identity changed"


def input_phrase(path: str) -> str:
    """The reviewer's words for one differing input path."""
    for pattern, phrase in INPUT_PHRASES:
        if pattern.endswith(".*"):
            prefix = pattern[:-1]
            if path.startswith(prefix):
                return phrase.format(key=path[len(prefix) :].split(".")[0])
        elif path == pattern or path.startswith(pattern + "."):
            return phrase
    return f"{path} changed"


class NearestSource(StrEnum):
    BASE = "base"
    """Desired at base: the same slot before the change (or the very same identity)."""
    STORED = "stored"
    """In the store: the same test under the same commit, another profile or origin."""


@dataclass(frozen=True)
class InputChange:
    path: str
    phrase: str
    base: Any
    head: Any


@dataclass(frozen=True)
class Nearest:
    unit: str
    source: NearestSource
    origin: Origin
    commit: str
    profile: str


@dataclass(frozen=True)
class Explanation:
    reason: str
    nearest: Nearest | None
    differences: tuple[InputChange, ...]

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.phrase for d in self.differences))


def input_differences(
    *,
    base_slot: DesiredSlot,
    base_unit: DesiredUnit,
    head_slot: DesiredSlot,
    head_unit: DesiredUnit,
) -> tuple[InputChange, ...]:
    """Differing inputs of two units, build inputs named through the builds' own preimages.

    A unit preimage holds its build as a hash only, which says *that* the build changed, not
    what; the slots' build preimages say what.
    """
    differences = _expanded(
        diff_preimages(_without_build(base_unit.preimage), _without_build(head_unit.preimage))
    )
    if base_slot.build.id != head_slot.build.id:
        build_differences = _expanded(
            diff_preimages(base_slot.build.preimage, head_slot.build.preimage)
        )
        differences = [
            InputDifference(f"build.{d.path}", d.left, d.right) for d in build_differences
        ] + differences
    return tuple(InputChange(d.path, input_phrase(d.path), d.left, d.right) for d in differences)


def _without_build(preimage: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in preimage.items() if key != "build"}


def _expanded(differences: Iterable[InputDifference]) -> list[InputDifference]:
    """Differences where one side is absent and the other a mapping, split into their keys.

    Identities drop empty inputs, so a profile gaining its first runtime setting shows as
    `runtime: None -> {mem: 8G}`; a reviewer should read `runtime mem changed`.
    """
    result: list[InputDifference] = []
    for d in differences:
        if d.left is None and isinstance(d.right, Mapping):
            nested = diff_preimages({}, d.right)
        elif d.right is None and isinstance(d.left, Mapping):
            nested = diff_preimages(d.left, {})
        else:
            result.append(d)
            continue
        result += _expanded(InputDifference(f"{d.path}.{n.path}", n.left, n.right) for n in nested)
    return result


_Placed = tuple[DesiredSlot, DesiredUnit]


class NearestIdentities:
    """Answers "why is this head unit not reused" by the rules in the module docstring."""

    def __init__(
        self, base_desired: DesiredState, head_desired: DesiredState, snapshot: StoreSnapshot
    ) -> None:
        self.head_desired = head_desired
        self._base_by_id: dict[str, _Placed] = {}
        self._base_by_place: dict[tuple[Origin, str, str, str], _Placed] = {}
        self._base_origins = {slot.origin for slot in base_desired.slots}
        self._base_commits = {(slot.origin, slot.commit.commit) for slot in base_desired.slots}
        self._base_profiles = {
            (slot.origin, slot.commit.commit, slot.profile) for slot in base_desired.slots
        }
        for slot in base_desired.slots:
            for unit in slot.units:
                self._base_by_id.setdefault(unit.unit, (slot, unit))
                place = (slot.origin, slot.commit.commit, slot.profile, unit.test)
                self._base_by_place.setdefault(place, (slot, unit))
        self._stored: dict[tuple[str, str], list[_Placed]] = {}
        seen: set[str] = set()
        for slot in (*base_desired.slots, *head_desired.slots):
            for unit in slot.units:
                summary = snapshot.units.get(unit.unit)
                if unit.unit in seen or summary is None or summary.verdicts == 0:
                    continue
                seen.add(unit.unit)
                self._stored.setdefault((slot.commit.commit, unit.test), []).append((slot, unit))

    def explain(self, slot: DesiredSlot, unit: DesiredUnit) -> Explanation:
        """Why `unit` (of head's `slot`) is not served by a known identity."""
        same = self._base_by_id.get(unit.unit)
        if same is not None:
            return Explanation(ALREADY_PLANNED, _nearest(same, NearestSource.BASE), ())
        counterpart = self._base_by_place.get(
            (slot.origin, slot.commit.commit, slot.profile, unit.test)
        )
        if counterpart is not None:
            differences = self._differences(counterpart, slot, unit)
            phrases = tuple(dict.fromkeys(d.phrase for d in differences))
            reason = ", ".join(phrases) or IDENTITY_CHANGED
            return Explanation(reason, _nearest(counterpart, NearestSource.BASE), differences)
        if slot.origin not in self._base_origins:
            reason = NEW_BRANCH
        elif (slot.origin, slot.commit.commit) not in self._base_commits:
            reason = NEW_COMMIT
        elif (slot.origin, slot.commit.commit, slot.profile) not in self._base_profiles:
            reason = NEW_PROFILE
        else:
            reason = NEW_TEST
        candidates = [
            (self._differences(placed, slot, unit), placed)
            for placed in self._stored.get((slot.commit.commit, unit.test), [])
        ]
        if not candidates:
            return Explanation(reason, None, ())
        differences, placed = min(
            candidates,
            key=lambda c: (len(c[0]), c[1][0].profile, str(c[1][0].origin), c[1][1].unit),
        )
        return Explanation(reason, _nearest(placed, NearestSource.STORED), differences)

    @staticmethod
    def _differences(
        placed: _Placed, slot: DesiredSlot, unit: DesiredUnit
    ) -> tuple[InputChange, ...]:
        return input_differences(
            base_slot=placed[0], base_unit=placed[1], head_slot=slot, head_unit=unit
        )


def _nearest(placed: _Placed, source: NearestSource) -> Nearest:
    slot, unit = placed
    return Nearest(
        unit=unit.unit,
        source=source,
        origin=slot.origin,
        commit=slot.commit.commit,
        profile=slot.profile,
    )
