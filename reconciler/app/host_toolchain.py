"""One worker host against one toolchain of a build identity: does it have that compiler, and
what a build or run on it gets to apply it.

The build identity names a concrete compiler (core.toolchain): its exact `--version` line, or a
Nix store path. A host is asked with the same command (`<cc> --version`, `LC_ALL=C`) before it
builds; a host without that compiler, or with another version, refuses (`ToolchainRefused`)
instead of building with what it has. The refusal is not transient, so it is not retried on
that host after a backoff as a dropped connection would be (app.toolchain_placement sends the
work to hosts that have the compiler).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.adapters.executors.base import WorkerHost
from reconciler.core.toolchain import (
    RECIPE_APPLICATION,
    VERSION_ENVIRONMENT,
    Application,
    Applied,
    applied,
    first_line,
    host_problem,
    identity_toolchain,
    parse_toolchain,
    version_command,
)
from reconciler.model.errors import InfrastructureError
from reconciler.model.execution import BuildJob

TOOLCHAIN_PROBE_SECONDS = 30.0


class ToolchainRefused(InfrastructureError):
    """This host's compiler is not the one the build identity names: it must not build it.

    Not transient: asking the same host again gives the same answer, so the batch belongs on
    another host, never back on this one after a backoff.
    """

    retryable = False

    def __init__(self, message: str, *, hint: str, toolchain: Mapping[str, str]) -> None:
        super().__init__(message, hint=hint)
        self.toolchain = dict(toolchain)


@dataclass(frozen=True)
class HostCompiler:
    """What a host's compiler said when asked for a toolchain of a build identity."""

    problem: str | None
    """Why the host cannot build with it; None when its compiler is the identity's."""
    version: str
    """The first line of its `--version` (empty when it failed)."""


async def probe_host_compiler(host: WorkerHost, toolchain: Mapping[str, str]) -> HostCompiler:
    """Ask `host` for the compiler of `toolchain` (an identity's); a host that cannot be
    reached raises `WorkerUnreachable`, as for any command."""
    request = parse_toolchain(toolchain["name"])
    result = await host.run(
        version_command(request), env=dict(VERSION_ENVIRONMENT), timeout=TOOLCHAIN_PROBE_SECONDS
    )
    output = result.output.decode(errors="replace")
    status = None if result.timed_out else result.exit_status
    problem = host_problem(toolchain, host=host.name, exit_status=status, output=output)
    return HostCompiler(problem, first_line(output) if status == 0 else "")


def toolchain_of(job: BuildJob) -> tuple[Mapping[str, str], str] | None:
    """The job's toolchain as its identity holds it, and its recipe's name; None when the
    recipe compiles nothing."""
    toolchain = identity_toolchain(job.preimage)
    recipe = job.preimage.get("recipe")
    if toolchain is None or not isinstance(recipe, Mapping):
        return None
    return toolchain, str(recipe.get("recipe"))


def applies_in_run(job: BuildJob) -> bool:
    """Whether the job's kernel is compiled inside the batch's run (ktest), not before it."""
    found = toolchain_of(job)
    return found is not None and RECIPE_APPLICATION.get(found[1]) is Application.RUN_ENVIRONMENT


def applied_toolchain(job: BuildJob) -> Applied:
    """What the job's build command gets to apply its toolchain (core.toolchain.applied)."""
    found = toolchain_of(job)
    if found is None or found[1] not in RECIPE_APPLICATION:
        return Applied()
    toolchain, recipe = found
    return applied(parse_toolchain(toolchain["name"]), recipe=recipe)


def run_environment(job: BuildJob) -> dict[str, str]:
    """Variables a batch's run gets to apply the toolchain, for a recipe that compiles inside
    the run (ktest's build-test-kernel compiles with `${CC:-gcc}`); empty for the others."""
    return dict(applied_toolchain(job).environment) if applies_in_run(job) else {}


def toolchain_header(job: BuildJob, *, version: str, applied: Applied) -> bytes:
    """The build log's first line: which compiler this host built with, and how."""
    found = toolchain_of(job)
    if found is None:
        return b"reconciler: this build recipe applies no toolchain\n"
    toolchain, recipe = found
    how = [f"{name}={value}" for name, value in sorted(applied.environment.items())]
    how += [f"MAKEFLAGS+={variable}" for variable in applied.make_variables]
    return (
        f"reconciler: toolchain {toolchain['name']} ({version}), applied by the {recipe} "
        f"recipe: {' '.join(how)}\n"
    ).encode()
