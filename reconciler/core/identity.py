"""Identity: the key of every build and result, a hash of exactly the inputs that decide it.

An identity is the sha256 of the canonical JSON (sorted keys, no whitespace) of a versioned dict
of inputs, its *preimage*. The preimage is kept beside each record so two identities can be
compared input by input (`diff_preimages`). What is not an input is left out on purpose: the
branch name, the worker, the time, how the specs are laid out in files. Source enters as the
commit's *tree* hash, so a rebase that reproduces a tree reuses its results.

Three levels:
- build: source tree, arch, config fragment, toolchain, make flags, build env, build recipe,
  each only where the recipe uses it: a config only for a recipe that configures a kernel, a
  toolchain (the concrete compiler, core.toolchain) only for one that compiles;
- unit: build + runtime inputs + harness inputs + test file + timeout (the planning grain);
- result: unit inputs + subtest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model.specs import Harness, HarnessType, Profile

IDENTITY_VERSION = 1
SHORT = 12

# Build recipes per harness type, versioned: bump a version when the recipe's behaviour changes,
# and every build made by it gets a new identity. Version 2: each applies the profile's
# toolchain (core.toolchain.RECIPE_APPLICATION).
BUILD_RECIPES: dict[HarnessType, dict[str, Any]] = {
    HarnessType.COMMAND: {"recipe": "command", "version": 2},
    HarnessType.KTEST: {"recipe": "ktest-kernel", "version": 2},
    HarnessType.FSTESTS: {"recipe": "kernel", "version": 2},
    HarnessType.KSELFTEST: {"recipe": "kernel", "version": 2},
    # make <base>config + merge_config.sh + olddefconfig, reproducible, in a reused objdir.
    HarnessType.VM: {"recipe": "kbuild", "version": 2},
}

CONFIGURES_KERNEL: frozenset[HarnessType] = frozenset({HarnessType.VM})
"""Harness types whose build configures a kernel from the profile's `base_config` and
`kconfig` (the kbuild recipe). ktest's build-test-kernel takes its config from the tests'
`require-kernel-config`; fstests and kselftest builds run a command in a tree and configure
nothing."""
ALWAYS_COMPILES: frozenset[HarnessType] = frozenset(
    {HarnessType.VM, HarnessType.KTEST, HarnessType.KSELFTEST}
)
"""Harness types whose build compiles even without a `build` command: kbuild, ktest's
build-test-kernel, kselftest's default `make headers && make -C tools/testing/selftests
install`. `command` and `fstests` harnesses compile only through their `build` command."""
_CONFIGURING_RECIPES = frozenset(BUILD_RECIPES[kind]["recipe"] for kind in CONFIGURES_KERNEL)


def configures_kernel(harness: Harness) -> bool:
    """Whether the profile's `base_config` and `kconfig` are inputs of this harness's build."""
    return harness.type in CONFIGURES_KERNEL


def applies_toolchain(harness: Harness) -> bool:
    """Whether this harness's build compiles, so the profile's toolchain is one of its inputs."""
    return harness.type in ALWAYS_COMPILES or harness.build is not None


def canonical_json(value: Any) -> str:
    """The one serialisation identities are hashed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    hex: str
    preimage: Mapping[str, Any]

    @property
    def short(self) -> str:
        return self.hex[:SHORT]


def identity_of(preimage: Mapping[str, Any]) -> Identity:
    return Identity(sha256_hex(canonical_json(preimage)), preimage)


def _without_empty(values: Mapping[str, Any]) -> dict[str, Any]:
    # Dropping unset and empty values keeps identities stable when a later version adds an
    # optional field, and makes `env: {}` and an absent env the same input.
    return {k: v for k, v in values.items() if v is not None and v != [] and v != {}}


def normalize_kconfig(lines: list[str]) -> list[str]:
    """Sorted `CONFIG_X=v` lines; `LOCALVERSION` dropped (it names a kernel, it doesn't make one).

    A later line for the same option wins, as it does in merge_config.sh.
    """
    options: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition("=")
        name = name if name.startswith("CONFIG_") else f"CONFIG_{name}"
        if name in {"CONFIG_LOCALVERSION", "CONFIG_LOCALVERSION_AUTO"}:
            continue
        options[name] = value
    return sorted(f"{name}={value}" for name, value in options.items())


def build_recipe(harness: Harness) -> dict[str, Any]:
    recipe = dict(BUILD_RECIPES[harness.type])
    if harness.build is not None:
        recipe["command"] = harness.build
    return recipe


def build_identity(
    *,
    source_tree: str,
    profile: Profile,
    recipe: Mapping[str, Any],
    toolchain: Mapping[str, str] | None,
) -> Identity:
    """The build's identity; `toolchain` is the concrete compiler (core.toolchain's
    `toolchain_identity`), None for a recipe that compiles nothing. The profile's config is
    an input only of a recipe that configures a kernel."""
    config = None
    if recipe.get("recipe") in _CONFIGURING_RECIPES:
        config = _without_empty(
            {"base": profile.base_config, "fragment": normalize_kconfig(profile.kconfig)}
        )
    preimage = {
        "v": IDENTITY_VERSION,
        "kind": "build",
        "source_tree": source_tree,
        "arch": profile.arch,
        "config": config,
        "toolchain": dict(toolchain) if toolchain is not None else None,
        "make_flags": list(profile.make_flags),
        "env": dict(profile.build_env),
        "recipe": dict(recipe),
    }
    return identity_of(_without_empty(preimage))


def runtime_inputs(profile: Profile) -> dict[str, Any]:
    return _without_empty(profile.runtime.model_dump(mode="json"))


def harness_definition(harness: Harness) -> dict[str, Any]:
    """The parts of a harness spec that decide a verdict (not its name, not its build command,
    which belongs to build identity)."""
    return _without_empty(
        {
            "type": harness.type.value,
            "list": harness.list,
            "run": harness.run,
            "output": harness.output.value,
        }
    )


def harness_definition_revision(harness: Harness) -> str:
    """Revision of a harness whose tests live in the source tree: hash of its definition."""
    return sha256_hex(canonical_json({"v": IDENTITY_VERSION, **harness_definition(harness)}))


def tests_in_source_tree(harness: Mapping[str, Any]) -> bool:
    """Whether a unit's harness inputs (`harness_inputs`) are those of a harness whose tests live
    in the source tree: its revision is then the hash of its definition, not a tree of its own.
    Such tests change with the source, so two builds with one boot image may still test
    different things."""
    definition = {
        key: value for key, value in harness.items() if key not in {"revision", "dependencies"}
    }
    expected = sha256_hex(canonical_json({"v": IDENTITY_VERSION, **definition}))
    return harness.get("revision") == expected


def harness_inputs(harness: Harness, *, revision: str) -> dict[str, Any]:
    return {**harness_definition(harness), "revision": revision}


def unit_fields(
    *,
    build: str,
    runtime: Mapping[str, Any],
    harness: Mapping[str, Any],
    test: str,
    timeout: int,
) -> dict[str, Any]:
    """The inputs a unit and each of its results share."""
    return _without_empty(
        {
            "v": IDENTITY_VERSION,
            "build": build,
            "runtime": dict(runtime),
            "harness": dict(harness),
            "test": test,
            "timeout": timeout,
        }
    )


def unit_identity(fields: Mapping[str, Any]) -> Identity:
    return identity_of({**fields, "kind": "unit"})


def result_preimage(fields: Mapping[str, Any], subtest: str) -> dict[str, Any]:
    return {**fields, "kind": "result", "subtest": subtest}


def result_identity(fields: Mapping[str, Any], subtest: str) -> Identity:
    return identity_of(result_preimage(fields, subtest))


class ResultIdentities:
    """Result identities of one unit's subtests, without re-serialising the shared inputs.

    The canonical JSON of a result preimage is the unit's inputs with one string spliced in at
    the `subtest` key; serialising the shared part once makes expanding a partial unit of
    thousands of subtests cheap. Equal, by construction and by test, to `result_identity`.
    """

    _MARKER = "\u0001subtest\u0001"

    def __init__(self, fields: Mapping[str, Any]) -> None:
        text = canonical_json(result_preimage(fields, self._MARKER))
        prefix, marker, suffix = text.partition(json.dumps(self._MARKER))
        if not marker:  # pragma: no cover - the marker is always serialised the same way
            raise AssertionError("subtest marker not found in canonical JSON")
        self._prefix = prefix
        self._suffix = suffix

    def of(self, subtest: str) -> str:
        text = self._prefix + json.dumps(subtest, ensure_ascii=True) + self._suffix
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class InputDifference:
    path: str
    """Dotted path of the input, e.g. `runtime.env.FOO` or `config.fragment`."""
    left: Any
    right: Any


_ABSENT = None


def diff_preimages(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[InputDifference]:
    """Every input that differs between two preimages, by dotted path, in sorted order."""
    differences: list[InputDifference] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{path}.{key}" if path else key)
        elif a != b:
            differences.append(InputDifference(path or "(root)", a, b))

    walk(left, right, "")
    return differences
