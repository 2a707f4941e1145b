"""Running the `kbuild` recipe (core.kbuild) on a worker host, and judging what it gave.

The steps run one after another on the host, each holding the lineage's flock, and the
reconciler decides between them: after configuring it reads the resolved `.config` back and
checks it against the profile (core.kconfig_check), and only a config that is what was asked
for gets built. What comes out is one of:

- `pass`: the image and `.config` copied to `<workdir>/kbuild/builds/<build id>/`, their sha256
  sums, the whole log (configure, check, make);
- `fail`, a verdict on the build: a config target that does not exist, an option the tree does
  not know or could not honour, a compile error; stored with its log, not rebuilt;
- `error`: the host broke (make killed or timed out, the lineage changed under the build), for
  the caller to raise as an infrastructure failure, retried. git and disk failures raise
  directly through the workspace's `must`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reconciler.adapters.executors.base import WorkerHost
from reconciler.core import kbuild
from reconciler.core.kconfig_check import (
    check_fragment,
    describe_problems,
    kconfig_definitions,
    unmet_options,
)
from reconciler.model.execution import BuildJob, CommandResult
from reconciler.model.results import BuildStatus

KBUILD_TIMEOUT = 4 * 3600.0
"""Per step; a step may first wait for a build orphaned by a killed reconciler."""


class KbuildWorkspace(Protocol):
    """What the recipe needs from a host's workspace (app.worker_setup.HostWorkspace)."""

    @property
    def host(self) -> WorkerHost: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    def path(self, *parts: str) -> str: ...

    def lock(self, key: str) -> asyncio.Lock: ...

    async def must(self, command: str, *, what: str, timeout: float = ...) -> str:
        """Run `command`; an exit status other than 0 raises an infrastructure error."""

    async def cache(self, url: str, commit: str) -> str:
        """The host's bare cache of `url`, holding `commit`."""


@dataclass(frozen=True)
class KernelBuild:
    status: BuildStatus
    log: bytes
    duration: float
    message: str = ""
    image_hash: str | None = None
    config_hash: str | None = None


def kbuild_root(workspace: KbuildWorkspace) -> str:
    return workspace.path("kbuild")


def build_dir(workspace: KbuildWorkspace, build: str) -> str:
    """Where `build`'s image and `.config` are kept on this host once it has passed."""
    return kbuild.build_directory(kbuild_root(workspace), build)


async def has_image(workspace: KbuildWorkspace, job: BuildJob) -> bool:
    """True when this host holds `job`'s built image (its directory is only ever complete)."""
    image = kbuild.boot_image(build_dir(workspace, job.build), arch=job.arch)
    result = await workspace.host.run(f"test -f {kbuild.q(image)}", timeout=60)
    return result.exit_status == 0


class _Log:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def say(self, text: str) -> None:
        self.parts.append(text.encode() + (b"" if text.endswith("\n") else b"\n"))

    def add(self, output: bytes) -> None:
        self.parts.append(output if output.endswith(b"\n") or not output else output + b"\n")

    def bytes(self) -> bytes:
        return b"".join(self.parts)


async def build_kernel(
    workspace: KbuildWorkspace, job: BuildJob, *, host_compiler: str = ""
) -> KernelBuild:
    """Configure, check and build `job` in its lineage on this host (see the module doc).

    `host_compiler` is what this host's compiler said it is (the workspace checked it against
    the identity before calling): the log shows it beside what the identity asks for."""
    started = workspace.clock()
    log = _Log()

    def finish(status: BuildStatus, message: str = "", **hashes: str | None) -> KernelBuild:
        if message:
            log.say(f"kbuild: {message}")
        return KernelBuild(status, log.bytes(), workspace.clock() - started, message, **hashes)

    try:
        inputs = kbuild.kbuild_inputs(job)
    except kbuild.RecipeInputError as error:
        return finish(BuildStatus.FAIL, str(error))
    root = kbuild_root(workspace)
    key = kbuild.lineage_key(url=inputs.url, profile=inputs.profile, arch=inputs.arch_name)
    lineage = kbuild.Lineage(f"{root}/{key}")
    async with workspace.lock(f"kbuild:{key}"):
        cache = await workspace.cache(inputs.url, inputs.commit)
        prepared_output = await workspace.must(
            kbuild.prepare_command(lineage, cache=cache, commit=inputs.commit),
            what=f"checking out {inputs.commit[:12]} for a kernel build",
            timeout=KBUILD_TIMEOUT,
        )
        prepared = kbuild.parse_prepared(prepared_output)
        log.add(
            "".join(
                line + "\n" for line in prepared_output.splitlines() if "kbuild-" not in line
            ).encode()
        )
        env = kbuild.build_environment(
            inputs, prepared=prepared, ccache_dir=workspace.path("ccache")
        )
        _header(
            log,
            inputs,
            lineage=lineage,
            prepared=prepared,
            env=env,
            job=job,
            host_compiler=host_compiler,
        )

        async def step(command: str) -> CommandResult:
            result = await workspace.host.run(command, env=env, timeout=KBUILD_TIMEOUT)
            log.add(result.output)
            return result

        configured = await step(kbuild.configure_command(inputs, lineage, ccache=prepared.ccache))
        if (broken := _broken(configured, "configuring")) is not None:
            return finish(BuildStatus.ERROR, broken)
        if configured.exit_status != 0:
            return finish(
                BuildStatus.FAIL,
                f"configuring failed (exit {configured.exit_status}): is {inputs.base_config!r}"
                " a config target of this tree (`make help` lists them)?",
            )
        config = await workspace.host.read_file(f"{lineage.obj}/.config")
        if config is None:
            return finish(BuildStatus.ERROR, f"{lineage.obj}/.config vanished after configuring")
        config_text = config.decode(errors="replace")
        config_hash = hashlib.sha256(config).hexdigest()
        if problems := await _fragment_problems(workspace, inputs, lineage, config_text):
            log.say(problems)
            return finish(BuildStatus.FAIL, "the resolved .config is not what the profile asks")
        log.say(f"kbuild: all {len(inputs.fragment)} options of the fragment are in .config")
        built = await step(
            kbuild.build_command(inputs, lineage, ccache=prepared.ccache, config_sha256=config_hash)
        )
        if (broken := _broken(built, "building")) is not None:
            return finish(BuildStatus.ERROR, broken)
        if built.exit_status != 0:
            return finish(BuildStatus.FAIL, f"make exited {built.exit_status}")
        sums = kbuild.parse_sums(
            await workspace.must(
                kbuild.collect_command(inputs, lineage, build_dir=build_dir(workspace, job.build)),
                what="keeping the built kernel",
                timeout=KBUILD_TIMEOUT,
            )
        )
    image_hash = sums.get(inputs.arch.image_name)
    kept_config_hash = sums.get(kbuild.CONFIG_NAME)
    if image_hash is None or kept_config_hash is None:
        return finish(BuildStatus.ERROR, "sha256sum of the kept image and .config gave nothing")
    log.say(
        f"kbuild: {inputs.arch.image} sha256 {image_hash}\nkbuild: .config sha256 "
        f"{kept_config_hash}"
    )
    return finish(BuildStatus.PASS, image_hash=image_hash, config_hash=kept_config_hash)


def _broken(result: CommandResult, what: str) -> str | None:
    """Why a step says nothing about the kernel (killed, timed out, lineage moved), if so."""
    if result.timed_out or result.exit_status is None:
        return f"{what} did not finish (killed or timed out)"
    if result.exit_status == kbuild.LINEAGE_MOVED:
        return f"{what}: the lineage changed under this build"
    return None


async def _fragment_problems(
    workspace: KbuildWorkspace,
    inputs: kbuild.KbuildInputs,
    lineage: kbuild.Lineage,
    config_text: str,
) -> str:
    """The log text explaining what of the fragment `.config` lacks; empty when nothing."""
    unmet = unmet_options(inputs.fragment, config_text)
    if not unmet:
        return ""
    # Only now is the tree searched, for just these symbols: a build that got its config
    # pays nothing for the check.
    symbols = [name.removeprefix("CONFIG_") for name in unmet]
    found = await workspace.must(
        kbuild.kconfig_grep_command(lineage, symbols),
        what="looking up Kconfig symbols",
        timeout=600,
    )
    defined = kconfig_definitions(found, srcarch=inputs.arch.srcarch)
    problems = check_fragment(inputs.fragment, config_text, defined)
    return describe_problems(
        problems, config_text=config_text, arch=inputs.arch_name, base_config=inputs.base_config
    )


def _header(
    log: _Log,
    inputs: kbuild.KbuildInputs,
    *,
    lineage: kbuild.Lineage,
    prepared: kbuild.Prepared,
    env: dict[str, str],
    job: BuildJob,
    host_compiler: str,
) -> None:
    cc = kbuild.toolchain_variables(inputs, ccache=prepared.ccache)
    asked = inputs.toolchain_version or inputs.toolchain.store_path or "?"
    ccache = (
        f"used (CCACHE_DIR={env.get('CCACHE_DIR')})"
        if prepared.ccache
        else "not installed on this host: every file the object dir lacks is compiled"
    )
    log.say(
        f"kbuild: {inputs.url} {inputs.commit} (tree {job.source.tree})\n"
        f"kbuild: profile {inputs.profile}, arch {inputs.arch_name}: ARCH={inputs.arch.make_arch}"
        f" {inputs.arch.target}, base {inputs.base_config}, {len(inputs.fragment)} fragment"
        f" option(s), toolchain {inputs.toolchain.name} ({' '.join(cc)})\n"
        f"kbuild: compiler {host_compiler or asked} (the build identity names {asked})\n"
        f"kbuild: lineage {lineage.root} (its object dir is reused by every build of this"
        " repo, profile and arch)\n"
        f"kbuild: ccache {ccache}\n"
        "kbuild: environment "
        + " ".join(f"{name}={kbuild.q(value)}" for name, value in sorted(env.items()))
    )
