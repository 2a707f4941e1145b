"""Desired work that cannot be planned, gathered as `desired_state` walks the specs (pure).

Two kinds, each one `BlockedWork` with every origin and commit that asked for it: test files
whose enumeration failed (their listing, or a dependency they need), and slots whose profile's
toolchain did not resolve to a concrete compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.model.desired import BlockedWork, BlockReason, Enumeration, Origin


@dataclass
class ToolchainBlocks:
    """Slots left out because their profile's toolchain did not resolve, gathered into one
    `BlockedWork` per (profile, harness)."""

    found: dict[tuple[str, str], tuple[str, list[Origin], list[str]]] = field(default_factory=dict)

    def add(self, *, message: str, profile: str, harness: str, origin: Origin, commit: str) -> None:
        _, origins, commits = self.found.setdefault((profile, harness), (message, [], []))
        if origin not in origins:
            origins.append(origin)
        if commit not in commits:
            commits.append(commit)

    def blocked(self) -> tuple[BlockedWork, ...]:
        return tuple(
            BlockedWork(
                reason=BlockReason.TOOLCHAIN_UNAVAILABLE,
                message=message,
                harness=harness,
                profile=profile,
                origins=tuple(sorted(origins)),
                commits=tuple(commits),
            )
            for (profile, harness), (message, origins, commits) in sorted(self.found.items())
        )


class BlockedTestFiles:
    """Test files that could not be enumerated, with every origin and commit that asked."""

    def __init__(self, enumeration: Enumeration) -> None:
        self._enumeration = enumeration
        self._asked: dict[tuple[Any, ...], tuple[set[Origin], dict[str, None]]] = {}

    def add(self, *, origin: Origin, commit: str, group: str, harness: str, tree: str) -> None:
        """`origin` asks, at `commit`, for test group `group` read from `tree`."""
        for test in self._enumeration.get((group, tree), ()):
            if test.blocked is None:
                continue
            key = (test.blocked.reason, test.blocked.message, harness, group, test.test)
            origins, commits = self._asked.setdefault(key, (set(), {}))
            origins.add(origin)
            commits[commit] = None

    def result(self) -> tuple[BlockedWork, ...]:
        return tuple(
            BlockedWork(
                reason=reason,
                message=message,
                harness=harness,
                group=group,
                test=test,
                origins=tuple(sorted(origins)),
                commits=tuple(commits),
            )
            for (reason, message, harness, group, test), (origins, commits) in sorted(
                self._asked.items(), key=lambda item: (item[0][3], item[0][4], item[0][0])
            )
        )
