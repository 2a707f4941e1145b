"""Build inputs no build uses, rejected where they are written instead of hashed.

A build identity holds only what its recipe uses (core.identity): the profile's `base_config`
and `kconfig` only where a kernel is configured from them (`vm` harnesses, the kbuild recipe),
its `toolchain` only where something is compiled. A profile that sets one of them and runs only
on harnesses that ignore it asks for something no build will do: a `kconfig` on the
quickstart's `command` harness would be silently dropped. So `validate` reports it, at the key
(FILE:LINE:COLUMN), naming who runs the profile where. A profile that some harness does use
them on is fine: on the others its builds simply do not hold them, and share their identity
with the same build under a profile without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.adapters.yaml_documents import Part, YamlDocument, locate
from reconciler.core.identity import applies_toolchain, configures_kernel
from reconciler.model.errors import SpecError
from reconciler.model.specs import Baseline, Branch, Harness, HarnessType, Profile, Spec, TestGroup

_NO_KERNEL_CONFIG: Mapping[HarnessType, str] = {
    HarnessType.COMMAND: "builds with its own `build` command and configures no kernel",
    HarnessType.KTEST: "takes a kernel's config from its tests' `require-kernel-config` lines",
    HarnessType.FSTESTS: "runs a `build` command and configures no kernel",
    HarnessType.KSELFTEST: "builds the selftests and configures no kernel",
}
ASKERS_NAMED = 3
"""Branches and baselines named in one error; the rest are counted."""
_CONFIG_HINT = (
    "only `vm` harnesses (the kbuild recipe) configure a kernel from a profile: remove `{field}`"
    " from this profile, or run its test groups on a `vm` harness"
)
_TOOLCHAIN_HINT = (
    "a `command` or `fstests` harness compiles only through its `build` command: remove"
    " `toolchain` from this profile, or give the harness a `build` command"
)


@dataclass(frozen=True)
class _Input:
    field: str
    is_set: Callable[[Profile], bool]
    used_by: Callable[[Harness], bool]
    why_not: Callable[[Harness], str]
    hint: str


_INPUTS = (
    _Input(
        "kconfig",
        lambda profile: bool(profile.kconfig),
        configures_kernel,
        lambda harness: _NO_KERNEL_CONFIG.get(harness.type, "configures no kernel"),
        _CONFIG_HINT.format(field="kconfig"),
    ),
    _Input(
        "base_config",
        lambda profile: profile.base_config is not None,
        configures_kernel,
        lambda harness: _NO_KERNEL_CONFIG.get(harness.type, "configures no kernel"),
        _CONFIG_HINT.format(field="base_config"),
    ),
    _Input(
        "toolchain",
        # Only a toolchain written in the spec: the default `gcc` asks for nothing.
        lambda profile: "toolchain" in profile.model_fields_set,
        applies_toolchain,
        lambda harness: "compiles nothing (it has no `build` command)",
        _TOOLCHAIN_HINT,
    ),
)


def unused_build_input_errors(
    specs: Sequence[tuple[str, Spec]], *, documents: Mapping[tuple[str, str], YamlDocument]
) -> list[SpecError]:
    """One error per profile key that no harness the profile runs on uses.

    `specs` are the valid documents as (kind, spec); `documents` their YAML by (kind, name).
    References that do not resolve are reported elsewhere and skipped here.
    """
    profiles = {spec.name: spec for kind, spec in specs if isinstance(spec, Profile)}
    groups = {spec.name: spec for kind, spec in specs if isinstance(spec, TestGroup)}
    harnesses = {spec.name: spec for kind, spec in specs if isinstance(spec, Harness)}
    uses: dict[str, list[tuple[str, Harness]]] = {}
    for _, spec in specs:
        if not isinstance(spec, Branch | Baseline):
            continue
        for group_name in spec.test_groups:
            group = groups.get(group_name)
            harness = harnesses.get(group.harness) if group is not None else None
            if harness is None:
                continue
            for profile_name in spec.profiles:
                uses.setdefault(profile_name, []).append((f"{spec.kind} {spec.name!r}", harness))
    errors: list[SpecError] = []
    for profile_name, profile_uses in sorted(uses.items()):
        profile = profiles.get(profile_name)
        document = documents.get(("Profile", profile_name))
        if profile is None or document is None:
            continue
        for build_input in _INPUTS:
            if not build_input.is_set(profile):
                continue
            if any(build_input.used_by(harness) for _, harness in profile_uses):
                continue
            errors.append(_error(build_input, profile, profile_uses, document=document))
    return errors


def _error(
    build_input: _Input,
    profile: Profile,
    uses: Sequence[tuple[str, Harness]],
    *,
    document: YamlDocument,
) -> SpecError:
    askers = list(dict.fromkeys(asker for asker, _ in uses))
    named = ", ".join(askers[:ASKERS_NAMED])
    if len(askers) > ASKERS_NAMED:
        named += f" and {len(askers) - ASKERS_NAMED} more"
    by_name = {harness.name: harness for _, harness in uses}
    where = "; ".join(
        f"harness {name!r} ({harness.type.value}) {build_input.why_not(harness)}"
        for name, harness in sorted(by_name.items())
    )
    return SpecError(
        f"`{build_input.field}` of Profile {profile.name!r} is an input of no build: "
        f"{named} {'runs' if len(askers) == 1 else 'run'} it only where {where}",
        location=locate(document, [build_input.field], part=Part.KEY),
        hint=build_input.hint,
    )
