"""Toolchains: what a Profile's `toolchain` names, what an identity holds of it, how each build
recipe applies it, and how a host's compiler is judged against it.

An identity that names a compiler the build did not use is a lie, and reuse built on it is
unsound. So the name a Profile writes (`clang`, `gcc-12`, a path) is a request: the planning
host resolves it to a concrete compiler (`adapters.toolchain_probe`: the first line of
`<cc> --version`; a Nix store path is concrete by itself), the build identity holds that
(`toolchain_identity`), every recipe applies it (`RECIPE_APPLICATION`), and each host checks
its own compiler against the identity before it builds (`host_problem`), never falling back to
another one.

Pure: parsing, the identity value, make variables and environments, judging a host's answer.
Running `--version` is I/O and lives in adapters (planning host) and app (worker hosts).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.core.identity import applies_toolchain
from reconciler.model.desired import ResolvedToolchain
from reconciler.model.specs import TOOLCHAIN_PATTERN
from reconciler.model.specset import SpecSet

NIX_STORE = "/nix/store/"
_STORE_ENTRY = re.compile(r"[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._-]+")
_ACCEPTED = (
    "gcc, gcc-N, clang, clang-N, an absolute path to a gcc or clang binary, or a Nix store path "
    "of a gcc or clang package (/nix/store/<hash>-gcc-13.2.0)"
)
VERSION_ENVIRONMENT: Mapping[str, str] = {"LC_ALL": "C"}
"""The environment `--version` runs in, on every host: one language, so one version string."""


class ToolchainFamily(StrEnum):
    GCC = "gcc"
    CLANG = "clang"


_CXX = {ToolchainFamily.GCC: "g++", ToolchainFamily.CLANG: "clang++"}


class ToolchainNameError(ValueError):
    """A toolchain name no recipe can build with."""


@dataclass(frozen=True)
class ToolchainRequest:
    """The binaries a toolchain name stands for; what they *are* is probed, not assumed."""

    name: str
    family: ToolchainFamily
    cc: str
    cxx: str
    llvm: str | None
    """`LLVM=` for kernel builds with clang: `1`, `-N` (a versioned suite) or a directory
    prefix ending in `/`; None for gcc."""
    store_path: str | None
    """The Nix store path holding the compiler, when it is in one."""


def _store_path(path: str) -> str | None:
    if not path.startswith(NIX_STORE):
        return None
    entry = path[len(NIX_STORE) :].split("/", 1)[0]
    return NIX_STORE + entry if _STORE_ENTRY.fullmatch(entry) else None


def parse_toolchain(name: str) -> ToolchainRequest:
    """The request `name` makes; `ToolchainNameError` for a name outside TOOLCHAIN_PATTERN."""
    if re.fullmatch(TOOLCHAIN_PATTERN, name) is None:
        raise ToolchainNameError(f"toolchain {name!r} is not one a build can use: use {_ACCEPTED}")
    store_path = _store_path(name)
    if store_path == name:
        # A package: its bin/ holds the compiler (gcc-wrapper has gcc and g++, clang-wrapper
        # clang and clang++), named after the package.
        package = name[len(NIX_STORE) + 33 :]
        family = ToolchainFamily.CLANG if package.startswith("clang") else ToolchainFamily.GCC
        binaries = f"{name}/bin/"
        return ToolchainRequest(
            name=name,
            family=family,
            cc=binaries + family.value,
            cxx=binaries + _CXX[family],
            llvm=binaries if family is ToolchainFamily.CLANG else None,
            store_path=store_path,
        )
    directory, _, binary = name.rpartition("/")
    family = ToolchainFamily.CLANG if binary.startswith("clang") else ToolchainFamily.GCC
    suffix = binary[len(family.value) :]
    cxx = _CXX[family] + suffix
    llvm = None
    if family is ToolchainFamily.CLANG:
        # kbuild's LLVM= takes a suite version suffix or a directory prefix, not both.
        llvm = f"{directory}/" if directory else (suffix or "1")
    return ToolchainRequest(
        name=name,
        family=family,
        cc=name,
        cxx=f"{directory}/{cxx}" if directory else cxx,
        llvm=llvm,
        store_path=store_path,
    )


def toolchain_identity(resolved: ResolvedToolchain) -> dict[str, str]:
    """What a build identity holds of a resolved toolchain.

    The concrete compiler: its exact version string, or its Nix store path (which pins its
    content; the version, which a planning host without that path cannot probe, stays out so
    every planning host computes one identity). And the name as written, because it decides
    which binaries a recipe runs: `clang` and `clang-14` may be one compiler, but kbuild's
    `LLVM=1` and `LLVM=-14` pick different linkers.
    """
    if resolved.problem is not None:
        raise ValueError(f"toolchain {resolved.name!r} is not resolved: {resolved.problem}")
    if resolved.store_path is not None:
        return {"name": resolved.name, "store_path": resolved.store_path}
    if resolved.version is None:
        raise ValueError(f"toolchain {resolved.name!r} has neither a version nor a store path")
    return {"name": resolved.name, "version": resolved.version}


def identity_toolchain(preimage: Mapping[str, Any]) -> Mapping[str, str] | None:
    """The toolchain a build preimage holds (see `toolchain_identity`); None when it holds
    none (a recipe that compiles nothing) or only a bare name (an identity made before
    toolchains were resolved)."""
    value = preimage.get("toolchain")
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return value
    return None


def toolchain_label(value: Any) -> str:
    """One string for a preimage's toolchain, as people and KCIDB's `compiler` want it."""
    if isinstance(value, Mapping):
        concrete = value.get("version") or value.get("store_path")
        return str(concrete or value.get("name", ""))
    return "" if value is None else str(value)


class Application(StrEnum):
    """How a recipe hands its toolchain to the build."""

    MAKE_VARIABLES = "make-variables"
    """kbuild: `LLVM=`, `CC=` and `HOSTCC=` on every make call (Kconfig asks the compiler
    what it supports, so configuring with another compiler gives another .config)."""
    BUILD_ENVIRONMENT = "build-environment"
    """`CC` and `CXX` in the build command's environment (make's default rules and
    `CC ?= cc` use them)."""
    KERNEL_MAKE = "kernel-make"
    """`CC` and `CXX` in the build command's environment and the make variables in
    `MAKEFLAGS`: a kernel tree's Makefiles assign CC themselves, so only a definition that
    make treats as given on its command line wins."""
    RUN_ENVIRONMENT = "run-environment"
    """`CC` and `CXX` in the environment of the run that builds the kernel itself (ktest's
    build-test-kernel compiles with `${CC:-gcc}`)."""


RECIPE_APPLICATION: Mapping[str, Application] = {
    "kbuild": Application.MAKE_VARIABLES,
    "command": Application.BUILD_ENVIRONMENT,
    "kernel": Application.KERNEL_MAKE,
    "ktest-kernel": Application.RUN_ENVIRONMENT,
}
"""Per build recipe (core.identity.BUILD_RECIPES), how it applies the toolchain."""


@dataclass(frozen=True)
class Applied:
    """What a recipe adds to a build to make it use a toolchain."""

    environment: Mapping[str, str] = field(default_factory=dict)
    make_variables: tuple[str, ...] = ()
    """`NAME=value` definitions: on make's command line (kbuild) or in MAKEFLAGS."""


def make_variables(request: ToolchainRequest, *, ccache: bool) -> tuple[str, ...]:
    """`LLVM=` (clang), `CC=` (behind ccache when asked) and `HOSTCC=`: the kernel's own
    host programs are built by the same compiler."""
    launcher = "ccache " if ccache else ""
    llvm = (f"LLVM={request.llvm}",) if request.llvm is not None else ()
    return (*llvm, f"CC={launcher}{request.cc}", f"HOSTCC={request.cc}")


def applied(request: ToolchainRequest, *, recipe: str, ccache: bool = False) -> Applied:
    """What `recipe` adds to its build for `request` (see `Application`)."""
    application = RECIPE_APPLICATION.get(recipe)
    if application is None:
        raise ToolchainNameError(f"build recipe {recipe!r} applies no toolchain")
    compilers = {"CC": request.cc, "CXX": request.cxx}
    if application is Application.MAKE_VARIABLES:
        return Applied(make_variables=make_variables(request, ccache=ccache))
    if application is Application.KERNEL_MAKE:
        return Applied(compilers, make_variables(request, ccache=False))
    return Applied(compilers)


def version_command(request: ToolchainRequest) -> str:
    """Shell text asking a host what its compiler is (run in `VERSION_ENVIRONMENT`)."""
    return f"{shlex.quote(request.cc)} --version"


def first_line(output: str) -> str:
    """The first non-empty line: the version string of `gcc --version`, `clang --version`."""
    return next((line.strip() for line in output.splitlines() if line.strip()), "")


NOT_FOUND = 127
"""The shell's exit status for a command it cannot find."""


def host_problem(
    toolchain: Mapping[str, str], *, host: str, exit_status: int | None, output: str
) -> str | None:
    """Why `host` cannot build with the identity's `toolchain`, given what `version_command`
    gave there; None when its compiler is the one the identity names."""
    request = parse_toolchain(toolchain["name"])
    found = first_line(output)
    if exit_status == NOT_FOUND:
        return f"{host} has no {request.cc} (toolchain {request.name!r} is not installed there)"
    if exit_status != 0:
        said = f": {found}" if found else ""
        how = "did not answer" if exit_status is None else f"exited {exit_status}"
        return f"`{request.cc} --version` {how} on {host}{said}"
    expected = toolchain.get("version")
    if expected is not None and found != expected:
        return (
            f"{host}'s {request.cc} is {found!r}, not {expected!r} as the build identity says"
            " (resolved on the planning host)"
        )
    return None


def refusal_hint(name: str, *, host: str) -> str:
    return (
        f"install the compiler the identity names on {host}, or build on hosts that have it; "
        f"a build never falls back to another compiler than toolchain {name!r} resolved to"
    )


def toolchains_in_use(specs: SpecSet) -> list[str]:
    """Distinct toolchain names of the profiles that unsuspended branches and baselines run
    on a harness that applies a toolchain: what the planning host must resolve."""
    names: set[str] = set()
    askers: list[tuple[Sequence[str], Sequence[str]]] = [
        (branch.profiles, branch.test_groups)
        for branch in specs.branches.values()
        if not branch.suspend
    ]
    askers += [(baseline.profiles, baseline.test_groups) for baseline in specs.baselines.values()]
    for profiles, groups in askers:
        harnesses = [specs.harnesses[specs.test_groups[group].harness] for group in groups]
        if any(applies_toolchain(harness) for harness in harnesses):
            names.update(specs.profiles[profile].toolchain for profile in profiles)
    return sorted(names)


def unavailable_message(resolved: ResolvedToolchain, *, profile: str) -> str:
    """Why a profile's work is blocked by its toolchain, and what to do."""
    return (
        f"toolchain {resolved.name!r} of profile {profile!r} could not be resolved on the "
        f"planning host: {resolved.problem}. Install it there (each toolchain is resolved to "
        "its exact version before planning, and workers are checked against it), or name "
        f"another: {_ACCEPTED}"
    )
