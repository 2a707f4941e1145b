"""Which adapter runs which harness type: the catalogue, as one table.

Adapters are looked up in `ADAPTERS` by `HarnessType`, never by building a class name from a
string. A type the table lacks is a user error naming the type, because a spec may ask for it
before this version of the reconciler can run it.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.adapters.harness.base import HarnessAdapter
from reconciler.adapters.harness.command import CommandHarness
from reconciler.adapters.harness.enumeration_cache import EnumerationCache
from reconciler.adapters.harness.fstests import FstestsHarness
from reconciler.adapters.harness.kselftest import KselftestHarness
from reconciler.adapters.harness.ktest import KtestHarness
from reconciler.adapters.harness.ktest_deps import DependencyTrees
from reconciler.adapters.harness.vm import VmHarness
from reconciler.model.errors import HarnessError
from reconciler.model.specs import Harness, HarnessType

AdapterFactory = Callable[[Harness, EnumerationCache, DependencyTrees | None], HarnessAdapter]

ADAPTERS: dict[HarnessType, AdapterFactory] = {
    HarnessType.COMMAND: lambda harness, cache, _: CommandHarness(harness, cache=cache),
    HarnessType.KTEST: lambda harness, cache, deps: KtestHarness(
        harness, cache=cache, dependencies=deps
    ),
    HarnessType.FSTESTS: lambda harness, cache, _: FstestsHarness(harness, cache=cache),
    HarnessType.KSELFTEST: lambda harness, cache, _: KselftestHarness(harness, cache=cache),
    HarnessType.VM: lambda harness, cache, _: VmHarness(harness, cache=cache),
}


def adapter_for(
    harness: Harness, *, cache: EnumerationCache, dependencies: DependencyTrees | None = None
) -> HarnessAdapter:
    """The adapter of `harness`; `dependencies` are the provisioned `require-git` repositories
    a ktest harness lists with (other types have none)."""
    factory = ADAPTERS.get(harness.type)
    if factory is None:
        available = ", ".join(sorted(kind.value for kind in ADAPTERS))
        raise HarnessError(
            f"harness type {harness.type.value!r} is not available yet",
            where=f"harness {harness.name!r}",
            hint=f"available types: {available}; a `command` harness with `list` and `run`"
            " commands can drive any suite until its own adapter lands",
        )
    return factory(harness, cache, dependencies)
