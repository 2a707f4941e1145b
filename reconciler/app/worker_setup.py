"""Getting a worker host ready for a batch: a git checkout of the right tree, built once.

Composed from the two primitives every host offers (run a shell command, read a file), so a
local slot and an SSH host prepare themselves the same way. On the host, under its workdir:

    repos/<url hash>.git          bare cache of each repo, fetched when a commit is missing
    src/<build id>/               checkout of the build's commit (objects stay in the cache)
    harness/<tree>/               checkout of a harness repo, when tests live there
    out/<batch id>.<n>/           result files of one run of a batch
    kbuild/<lineage>/             worktree and object dir of `kbuild` builds (app.kernel_build)
    kbuild/builds/<build id>/     a passed `kbuild` build's boot image and .config

Every path and ref reaches the shell through `shlex.quote`. Builds are done once per
(host, build identity): concurrent slots wait for the first. A build that exits non-zero is a
verdict on the build (`fail`); a host or git that breaks is infrastructure (`error`), retried.

Before a host compiles, its compiler is checked against the one the build identity names
(core.toolchain: the exact `--version` line, or the Nix store path): a host without it, or with
another version, refuses the build (`ToolchainRefused`) rather than build with what it has. The
answer is kept for the run, so the check costs one `--version` per host and toolchain.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.adapters.executors.base import WorkerHost
from reconciler.adapters.store.files import ResultStore
from reconciler.app import kernel_build
from reconciler.app.host_toolchain import (
    HostCompiler,
    ToolchainRefused,
    applied_toolchain,
    applies_in_run,
    probe_host_compiler,
    toolchain_header,
    toolchain_of,
)
from reconciler.core.identity import canonical_json
from reconciler.core.kbuild import uses_kbuild
from reconciler.core.toolchain import refusal_hint
from reconciler.model.errors import InfrastructureError, WorkerUnreachable
from reconciler.model.execution import BuildJob, SourceCheckout
from reconciler.model.make_flags import makeflags_value
from reconciler.model.results import BuildRecord, BuildStatus
from reconciler.model.specs import ALLOWED_URL_SCHEMES

log = logging.getLogger(__name__)

GIT_TIMEOUT = 1800.0
NOTHING_BUILT = (
    "the build exited 0 but produced no file in the checkout; a build that makes nothing is"
    " failed (leave `build` out of a harness that needs none)"
)
ALLOW_PROTOCOLS = "GIT_ALLOW_PROTOCOL=" + ":".join(ALLOWED_URL_SCHEMES)
"""Prefix of every worker git call that reaches a remote: `ext::` and other helpers refused."""
BUILD_TIMEOUT = 4 * 3600.0


class PreparationError(InfrastructureError):
    """The host could not fetch or check out what a batch needs: not a verdict, retried."""


@dataclass(frozen=True)
class BuildOutcome:
    status: BuildStatus
    message: str = ""


def q(value: str) -> str:
    return shlex.quote(value)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class HostWorkspace:
    """What has been prepared on one host during this run, and the locks that serialise it."""

    host: WorkerHost
    store: ResultStore
    clock: Callable[[], float]
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _built: dict[str, BuildOutcome] = field(default_factory=dict)
    _checked_out: set[str] = field(default_factory=set)
    _compilers: dict[str, HostCompiler] = field(default_factory=dict)

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def path(self, *parts: str) -> str:
        return "/".join((self.host.workdir.rstrip("/"), *parts))

    async def must(self, command: str, *, what: str, timeout: float = GIT_TIMEOUT) -> str:
        """Run `command`; any exit status but 0 is a `PreparationError` (infrastructure)."""
        result = await self.host.run(command, timeout=timeout)
        if result.exit_status != 0:
            tail = result.output.decode(errors="replace").strip().splitlines()[-3:]
            raise PreparationError(
                f"{self.host.name}: {what} failed"
                + (" (timed out)" if result.timed_out else "")
                + (f": {' / '.join(tail)}" if tail else ""),
                hint="check the worker's disk, network and git access; the batch is retried",
            )
        return result.output.decode(errors="replace")

    async def cache(self, url: str, commit: str) -> str:
        """The host's bare cache of `url`, holding `commit` (fetched only when missing)."""
        cache = self.path("repos", _digest(url)[:16] + ".git")
        async with self.lock(f"repo:{url}"):
            await self.must(
                f"mkdir -p {q(self.path('repos'))} && "
                f"{{ [ -d {q(cache)} ] || git init -q --bare {q(cache)}; }} && "
                f"{{ git --git-dir={q(cache)} cat-file -e {q(commit + '^{commit}')} 2>/dev/null"
                # `--` ends option parsing: a URL is never read as an option (`--upload-pack=`),
                # and only the transports a spec may name are allowed.
                f" || {ALLOW_PROTOCOLS} git --git-dir={q(cache)} fetch -q --no-tags -- {q(url)}"
                f" '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*'; }} && "
                f"git --git-dir={q(cache)} cat-file -e {q(commit + '^{commit}')}",
                what=f"fetching {commit[:12]}",
            )
        return cache

    async def checkout(self, source: SourceCheckout, *, into: str) -> str:
        """A checkout of `source.commit` at `into` (relative to workdir), made once."""
        target = self.path(into)
        async with self.lock(f"checkout:{target}"):
            if target in self._checked_out:
                return target
            cache = await self.cache(source.url, source.commit)
            staging = f"{target}.partial"
            # Into a staging directory, then renamed: a checkout cut short is never mistaken
            # for a complete one by a later run.
            await self.must(
                f"if [ ! -d {q(target)} ]; then rm -rf {q(staging)} && "
                f"mkdir -p {q(staging.rsplit('/', 1)[0])} && "
                f"git clone -q --shared --no-checkout -- {q(cache)} {q(staging)} && "
                f"git -C {q(staging)} -c advice.detachedHead=false checkout -q --detach "
                f"{q(source.commit)} && mv {q(staging)} {q(target)}; fi",
                what=f"checking out {source.commit[:12]}",
            )
            self._checked_out.add(target)
            return target

    async def compiler(self, toolchain: Mapping[str, str]) -> HostCompiler:
        """This host's answer for `toolchain`, asked once per run (see the module doc)."""
        key = canonical_json(toolchain)
        async with self.lock(f"toolchain:{key}"):
            known = self._compilers.get(key)
            if known is None:
                known = await probe_host_compiler(self.host, toolchain)
                self._compilers[key] = known
            return known

    def forget_compiler(self, toolchain: Mapping[str, str]) -> None:
        """Ask again next time (after a refusal: the host may have been fixed meanwhile)."""
        self._compilers.pop(canonical_json(toolchain), None)

    async def check_toolchain(self, job: BuildJob) -> str:
        """The host's version line of `job`'s toolchain, when it is the identity's; raises
        `ToolchainRefused` when it is missing or another. Empty for a job compiling nothing."""
        found = toolchain_of(job)
        if found is None:
            return ""
        toolchain, _ = found
        compiler = await self.compiler(toolchain)
        if compiler.problem is not None:
            raise ToolchainRefused(
                f"{self.host.name}: build {job.build[:12]} of profile {job.profile}: "
                f"{compiler.problem}",
                hint=refusal_hint(toolchain["name"], host=self.host.name),
                toolchain=toolchain,
            )
        return compiler.version

    async def ensure_build(
        self, job: BuildJob, *, build_command: str | None
    ) -> tuple[str, BuildOutcome]:
        """The built source directory of `job` on this host, building it if this host has not.

        A `kbuild` job (core.kbuild) gives its build directory instead: the boot image
        (`core.kbuild.boot_image`) and `.config`, built in the host's lineage for its repo,
        profile and arch. A build stored as `fail` is not redone: its tests are blocked until
        the inputs change.
        """
        async with self.lock(f"build:{job.build}"):
            if uses_kbuild(job.preimage):
                return await self._ensure_kernel(job)
            src = await self.checkout(job.source, into=f"src/{job.build}")
            known = self._built.get(job.build)
            if known is not None:
                return src, known
            stored = self.store.get_build(job.build)
            if stored is not None and stored.status is BuildStatus.FAIL:
                outcome = BuildOutcome(BuildStatus.FAIL, "the stored build failed")
            elif build_command is None:
                if applies_in_run(job):
                    await self.check_toolchain(job)
                outcome = BuildOutcome(BuildStatus.PASS, "built inside the harness run")
            else:
                outcome = await self._build(job, src=src, command=build_command)
            self._built[job.build] = outcome
            return src, outcome

    async def _ensure_kernel(self, job: BuildJob) -> tuple[str, BuildOutcome]:
        directory = kernel_build.build_dir(self, job.build)
        known = self._built.get(job.build)
        if known is not None:
            return directory, known
        stored = self.store.get_build(job.build)
        if stored is not None and stored.status is BuildStatus.FAIL:
            outcome = BuildOutcome(BuildStatus.FAIL, "the stored build failed")
        elif (
            stored is not None
            and stored.status is BuildStatus.PASS
            and await kernel_build.has_image(self, job)
        ):
            outcome = BuildOutcome(BuildStatus.PASS, "built earlier on this host")
        else:
            version = await self.check_toolchain(job)
            built = await kernel_build.build_kernel(self, job, host_compiler=version)
            if built.status is BuildStatus.ERROR:
                raise PreparationError(
                    f"{self.host.name}: kernel build {job.build[:12]}: {built.message}",
                    hint="a build that is killed, times out or loses its host is retried",
                )
            self._record(
                job,
                status=built.status,
                log=built.log,
                duration=built.duration,
                hashes=(built.image_hash, built.config_hash),
            )
            outcome = BuildOutcome(built.status, built.message)
            if stored is not None and stored.image_hash not in (None, built.image_hash):
                # The first record stands; a different image from the same inputs says the
                # build is not reproducible on this host (another compiler, a leaked path).
                log.warning(
                    "build %s on %s: image sha256 %s, not the stored %s",
                    job.build[:12],
                    self.host.name,
                    built.image_hash,
                    stored.image_hash,
                )
        self._built[job.build] = outcome
        return directory, outcome

    async def _build(self, job: BuildJob, *, src: str, command: str) -> BuildOutcome:
        version = await self.check_toolchain(job)
        toolchain = applied_toolchain(job)
        env = {**job.build_env, **toolchain.environment}
        make_flags = [*job.make_flags, *toolchain.make_variables]
        if make_flags:
            env["MAKEFLAGS"] = makeflags_value(make_flags)
        header = toolchain_header(job, version=version, applied=toolchain)
        started = self.clock()
        try:
            result = await self.host.run(command, cwd=src, env=env, timeout=BUILD_TIMEOUT)
        except WorkerUnreachable:
            raise
        duration = self.clock() - started
        if result.timed_out or result.exit_status is None:
            raise PreparationError(
                f"{self.host.name}: build {job.build[:12]} did not finish",
                hint="a build that times out or loses its host is retried, not failed",
            )
        status = BuildStatus.PASS if result.exit_status == 0 else BuildStatus.FAIL
        message = "" if status is BuildStatus.PASS else f"build exited {result.exit_status}"
        hashes: tuple[str | None, str | None] = (None, None)
        log = header + result.output
        if status is BuildStatus.PASS:
            hashes = await self._fingerprint(src)
            if hashes[0] is None:
                # Exit 0 and nothing made (a `make -t`, a build command that does nothing):
                # its tests would run against no build at all.
                status = BuildStatus.FAIL
                message = NOTHING_BUILT
                log += f"\nreconciler: {NOTHING_BUILT}\n".encode()
        self._record(job, status=status, log=log, duration=duration, hashes=hashes)
        return BuildOutcome(status, message)

    def _record(
        self,
        job: BuildJob,
        *,
        status: BuildStatus,
        log: bytes,
        duration: float,
        hashes: tuple[str | None, str | None],
    ) -> None:
        """Store the build's verdict; `hashes` are (image, resolved .config)."""
        self.store.put_build(
            BuildRecord(
                id=job.build,
                preimage=dict(job.preimage),
                status=status,
                resolved_config_hash=hashes[1],
                image_hash=hashes[0],
                log=self.store.put_log(log),
                duration=duration,
                worker=self.host.name,
                finished_at=datetime.fromtimestamp(self.clock(), UTC),
            )
        )

    async def _fingerprint(self, src: str) -> tuple[str | None, str | None]:
        """Hashes of what the build produced (files git does not track) and of `.config`."""
        listing = await self.must(
            f"cd {q(src)} && git ls-files -o -z | sort -z | xargs -0 -r sha256sum",
            what="hashing the build output",
        )
        config = await self.host.read_file(f"{src}/.config")
        image = _digest(listing) if listing.strip() else None
        return image, hashlib.sha256(config).hexdigest() if config is not None else None

    async def output_dir(self, batch_id: str, *, attempt: int) -> str:
        out = self.path("out", f"{batch_id[:24]}.{attempt}")
        await self.must(f"rm -rf {q(out)} && mkdir -p {q(out)}", what="making the output dir")
        return out


def runtime_env(runtime: Mapping[str, object]) -> dict[str, str]:
    env = runtime.get("env")
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
