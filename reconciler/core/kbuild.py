"""The `kbuild` recipe as data: a kernel's make steps for one build job, as shell text.

A kernel build is slow, and most of a branch's builds differ from the previous one by a few
files. So the recipe keeps one *lineage* per (repo, profile, arch) on each host: a worktree that
is moved from commit to commit with `git checkout` (only changed files get new mtimes) and an
object directory (`make O=`) that outlives each build, so the second build of a branch is
incremental. ccache, where the host has it, serves what a lineage compiled before (a branch
switched back to, a reverted change).

Three things make the result worth hashing:
- configuration is explicit: `make <base_config>` (default `defconfig`), the profile's fragment
  merged with `scripts/kconfig/merge_config.sh`, the recipe's own pins, `make olddefconfig`;
  the resolved `.config` is then checked against the fragment (`core.kconfig_check`), because
  olddefconfig silently drops what it cannot honour;
- the build is reproducible: `KBUILD_BUILD_TIMESTAMP` is the commit's date, user, host and the
  build counter are fixed, and `LOCALVERSION` is set (empty) so no `+` is appended; outputs
  kbuild stamps with the timestamp but does not track it (`TIMESTAMPED_OUTPUTS`) are remade
  each build; so two object dirs (or hosts with one compiler and binutils) building one commit,
  from scratch or incrementally, get one image hash. Not
  so for configs that generate a secret per object dir (auto-generated module signing keys,
  RANDSTRUCT's seed): their image hash names the image, not the inputs;
- the toolchain is the identity's: `gcc`, `gcc-N`, `clang` (`LLVM=1`), `clang-N`
  (`LLVM=-N`), an absolute path to a gcc or clang binary (clang: `LLVM=<its dir>/`) or a Nix
  store path, passed as `CC=` and `HOSTCC=` (core.toolchain) on every make call; the host
  checked before building that its compiler is the one the identity names.

Each step holds `flock` on the lineage's lock file; the descriptor is inherited by make and the
compilers, so a build orphaned by a killed reconciler finishes (or dies) before the next step of
a new one touches its tree. Between steps the reconciler holds its own lock, and each step
first checks that the worktree (and `.config`) are what the previous step left, exiting
`LINEAGE_MOVED` otherwise (a second reconciler sharing the workdir: retried, never built from a
mixed tree). Everything reaching a shell goes through `shlex.quote`.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.toolchain import (
    ToolchainNameError,
    ToolchainRequest,
    identity_toolchain,
    make_variables,
    parse_toolchain,
)
from reconciler.model.execution import BuildJob

RECIPE = "kbuild"
DEFAULT_BASE_CONFIG = "defconfig"
RECIPE_PINS = ("# CONFIG_LOCALVERSION_AUTO is not set",)
"""Written after the profile's fragment: a version string must not depend on the worktree."""
REPRODUCIBLE_ENV: Mapping[str, str] = {
    "KBUILD_BUILD_USER": "reconciler",
    "KBUILD_BUILD_HOST": "reconciler",
    # Otherwise the object directory's .version counter changes every image.
    "KBUILD_BUILD_VERSION": "1",
    # Set and empty: setlocalversion appends no `+` for an untagged commit.
    "LOCALVERSION": "",
}
LINEAGE_MOVED = 75
"""Exit status of a step that finds the lineage no longer holds what the previous step left."""
CONFIG_NAME = "config"
"""The resolved `.config`, kept beside the image in a build's directory."""


class RecipeInputError(ValueError):
    """A build job this recipe cannot build (unknown arch or toolchain): a verdict, not retried."""


@dataclass(frozen=True)
class KernelArch:
    """How one machine architecture (`uname -m`, as workers report it) is built and booted."""

    make_arch: str
    """`ARCH=` for make."""
    srcarch: str
    """The directory under `arch/`."""
    target: str
    """The make target producing the boot image."""
    image: str
    """The boot image, relative to the object directory."""

    @property
    def image_name(self) -> str:
        return self.image.rsplit("/", 1)[-1]


KERNEL_ARCHES: Mapping[str, KernelArch] = {
    "x86_64": KernelArch("x86_64", "x86", "bzImage", "arch/x86/boot/bzImage"),
    "aarch64": KernelArch("arm64", "arm64", "Image", "arch/arm64/boot/Image"),
    "riscv64": KernelArch("riscv", "riscv", "Image", "arch/riscv/boot/Image"),
    "ppc64le": KernelArch("powerpc", "powerpc", "vmlinux", "vmlinux"),
    "s390x": KernelArch("s390", "s390", "bzImage", "arch/s390/boot/bzImage"),
}


def uses_kbuild(preimage: Mapping[str, Any]) -> bool:
    recipe = preimage.get("recipe")
    return isinstance(recipe, Mapping) and recipe.get("recipe") == RECIPE


@dataclass(frozen=True)
class KbuildInputs:
    """What a build job says about the kernel to build, read from its identity preimage."""

    url: str
    commit: str
    profile: str
    arch_name: str
    arch: KernelArch
    base_config: str
    fragment: tuple[str, ...]
    """Normalized `CONFIG_X=v` lines (see core.identity.normalize_kconfig)."""
    toolchain: ToolchainRequest
    toolchain_version: str | None
    """The compiler's version string as the identity holds it (None for a Nix store path)."""
    make_flags: tuple[str, ...]
    env: Mapping[str, str]


def kbuild_inputs(job: BuildJob) -> KbuildInputs:
    """The recipe's inputs; `RecipeInputError` when the arch or toolchain is not buildable."""
    arch = KERNEL_ARCHES.get(job.arch)
    if arch is None:
        raise RecipeInputError(
            f"arch {job.arch!r} is not one the kbuild recipe knows: "
            f"use one of {', '.join(sorted(KERNEL_ARCHES))}"
        )
    config = job.preimage.get("config", {})
    toolchain = identity_toolchain(job.preimage)
    if toolchain is None:
        raise RecipeInputError(
            "the build identity names no resolved toolchain: plan again with this version"
        )
    try:
        request = parse_toolchain(toolchain["name"])
    except ToolchainNameError as error:
        raise RecipeInputError(str(error)) from error
    return KbuildInputs(
        url=job.source.url,
        commit=job.source.commit,
        profile=job.profile,
        arch_name=job.arch,
        arch=arch,
        base_config=str(config.get("base") or DEFAULT_BASE_CONFIG),
        fragment=tuple(str(line) for line in config.get("fragment", ())),
        toolchain=request,
        toolchain_version=toolchain.get("version"),
        make_flags=tuple(job.make_flags),
        env=dict(job.build_env),
    )


def toolchain_variables(inputs: KbuildInputs, *, ccache: bool) -> tuple[str, ...]:
    """make variables selecting the toolchain (every make call gets them: Kconfig asks the
    compiler what it supports, so configuring with another compiler gives another .config)."""
    return make_variables(inputs.toolchain, ccache=ccache)


def lineage_key(*, url: str, profile: str, arch: str) -> str:
    """The directory name of the lineage builds of (repo, profile, arch) share on a host."""
    digest = hashlib.sha256(f"{url}\n{profile}\n{arch}".encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", profile)[:40]
    return f"{readable}-{arch}-{digest}"


@dataclass(frozen=True)
class Lineage:
    """A lineage's directories on one host (absolute paths)."""

    root: str

    @property
    def src(self) -> str:
        return f"{self.root}/src"

    @property
    def obj(self) -> str:
        return f"{self.root}/obj"

    @property
    def lock(self) -> str:
        return f"{self.root}/lock"

    @property
    def fragment_file(self) -> str:
        return f"{self.root}/fragment.config"


def q(value: str) -> str:
    return shlex.quote(value)


def _locked(lineage: Lineage, body: str) -> str:
    waiting = f"kbuild: waiting for the build already running in {lineage.root}"
    return (
        f"mkdir -p {q(lineage.root)} && exec 9>>{q(lineage.lock)} && "
        f"{{ flock -n 9 || {{ echo {q(waiting)}; flock 9; }}; }} && {body}"
    )


def _shown(argv: Sequence[str], *, raw_tail: str = "") -> str:
    """`argv` (then `raw_tail`, shell text of ours) run after echoing it to the log, expanded,
    so a log says exactly what was run."""
    command = shlex.join(argv)
    return f"echo {q('$ ' + command)}{raw_tail} && {command}{raw_tail}"


def _still_at(lineage: Lineage, commit: str, *, config_sha256: str | None = None) -> str:
    checks = f'[ "$(git -C {q(lineage.src)} rev-parse HEAD)" = {q(commit)} ]'
    if config_sha256 is not None:
        checks += (
            f' && [ "$(sha256sum < {q(lineage.obj + "/.config")} | cut -d" " -f1)"'
            f" = {q(config_sha256)} ]"
        )
    moved = f"kbuild: {lineage.root} changed under this build (another reconciler?)"
    return f"{{ {checks} || {{ echo {q(moved)}; exit {LINEAGE_MOVED}; }}; }}"


def prepare_command(lineage: Lineage, *, cache: str, commit: str) -> str:
    """Move the lineage's worktree to `commit`; print its commit date and whether ccache exists.

    The worktree borrows the objects of the host's bare cache (`clone --shared` without its
    remote and refs, which only ever point at the cache's own branches). The index lock is
    removed first: with the flock held, one left behind can only come from a git killed
    mid-checkout, and it would otherwise fail every later build of the lineage.
    """
    src, partial = q(lineage.src), q(lineage.src + ".partial")
    return _locked(
        lineage,
        f"{{ [ -d {src}/.git ] || {{ rm -rf {partial} && git init -q {partial} && "
        f"echo {q(cache + '/objects')} > {partial}/.git/objects/info/alternates && "
        f"mv {partial} {src}; }}; }} && "
        f"rm -f {src}/.git/index.lock && "
        f"git -C {src} -c advice.detachedHead=false checkout -q -f --detach {q(commit)} && "
        f"git -C {src} clean -ffdxq && mkdir -p {q(lineage.obj)} && "
        f'echo "kbuild-timestamp=$(git -C {src} log -1 --format=%cD HEAD)" && '
        'echo "kbuild-ccache=$(command -v ccache || true)"',
    )


@dataclass(frozen=True)
class Prepared:
    timestamp: str
    """The commit's committer date (RFC 2822), for KBUILD_BUILD_TIMESTAMP."""
    ccache: bool


def parse_prepared(output: str) -> Prepared:
    values = dict(
        line.partition("=")[::2] for line in output.splitlines() if line.startswith("kbuild-")
    )
    return Prepared(
        timestamp=values.get("kbuild-timestamp", "").strip(),
        ccache=bool(values.get("kbuild-ccache", "").strip()),
    )


def build_environment(
    inputs: KbuildInputs, *, prepared: Prepared, ccache_dir: str
) -> dict[str, str]:
    """The environment of every make call; the profile's `build_env` wins over the recipe's."""
    env = {**REPRODUCIBLE_ENV, "KBUILD_BUILD_TIMESTAMP": prepared.timestamp}
    if prepared.ccache:
        # No CCACHE_BASEDIR: ccache would rewrite the compiler's absolute paths to relative
        # ones, and objects (arch/x86/boot's among them) would differ from a build without
        # ccache, and so would the image. Its hits come from the same lineage going back to
        # files it built before (another branch, a revert, an object dir that was lost).
        env |= {"CCACHE_DIR": ccache_dir}
    return env | dict(inputs.env)


def _make(inputs: KbuildInputs, lineage: Lineage, *, ccache: bool) -> list[str]:
    return [
        "make",
        "-C",
        lineage.src,
        f"O={lineage.obj}",
        f"ARCH={inputs.arch.make_arch}",
        *toolchain_variables(inputs, ccache=ccache),
        *inputs.make_flags,
    ]


def fragment_text(inputs: KbuildInputs) -> str:
    return "".join(f"{line}\n" for line in (*inputs.fragment, *RECIPE_PINS))


def configure_command(inputs: KbuildInputs, lineage: Lineage, *, ccache: bool) -> str:
    """`make <base>`, merge the fragment and the pins, `make olddefconfig`."""
    make = _make(inputs, lineage, ccache=ccache)
    merge = [
        f"{lineage.src}/scripts/kconfig/merge_config.sh",
        "-m",
        "-O",
        lineage.obj,
        f"{lineage.obj}/.config",
        lineage.fragment_file,
    ]
    return _locked(
        lineage,
        f"{_still_at(lineage, inputs.commit)} && "
        f"printf %s {q(fragment_text(inputs))} > {q(lineage.fragment_file)} && "
        f"{_shown([*make, inputs.base_config])} && {_shown(merge)} && "
        f"{_shown([*make, 'olddefconfig'])}",
    )


TIMESTAMPED_OUTPUTS = ("usr/initramfs_data.cpio", "kernel/kheaders_data.tar.xz")
"""Generated files stamped with `KBUILD_BUILD_TIMESTAMP` that kbuild does not rebuild when only
the timestamp changes: in a reused object dir they would keep the previous commit's date, and
an incremental build of a commit would differ from a full one (measured: the built-in
initramfs's mtimes were the last build's). Removed before each build so they are made anew."""


def _has_jobs(make_flags: Sequence[str]) -> bool:
    return any(flag.startswith(("-j", "--jobs")) for flag in make_flags)


def build_command(
    inputs: KbuildInputs, lineage: Lineage, *, ccache: bool, config_sha256: str
) -> str:
    """make the boot image, in the `.config` that was checked (or exit `LINEAGE_MOVED`)."""
    make = [*_make(inputs, lineage, ccache=ccache), inputs.arch.target]
    jobs = "" if _has_jobs(inputs.make_flags) else ' -j"$(nproc)"'
    image = f"{lineage.obj}/{inputs.arch.image}"
    missing = f"kbuild: make succeeded but left no {inputs.arch.image}"
    stale = " ".join(q(f"{lineage.obj}/{path}") for path in TIMESTAMPED_OUTPUTS)
    return _locked(
        lineage,
        f"{_still_at(lineage, inputs.commit, config_sha256=config_sha256)} && "
        f"rm -f {stale} && "
        f"{_shown(make, raw_tail=jobs)} && "
        f"{{ [ -f {q(image)} ] || {{ echo {q(missing)}; exit 1; }}; }}",
    )


def build_directory(kbuild_root: str, build: str) -> str:
    """Where a build's image and `.config` are kept on a host, once it has passed."""
    return f"{kbuild_root}/builds/{build}"


def boot_image(build_dir: str, *, arch: str) -> str:
    """The boot image (`bzImage` on x86_64) in a passed kbuild build's directory: what a VM
    harness boots (`BatchContext.kernel_image`)."""
    known = KERNEL_ARCHES.get(arch)
    return f"{build_dir}/{known.image_name if known else 'vmlinux'}"


def collect_command(inputs: KbuildInputs, lineage: Lineage, *, build_dir: str) -> str:
    """Copy the image and `.config` into the build's directory (via a staging directory, so a
    directory that exists is complete); print their sha256 sums."""
    staging, target = q(build_dir + ".partial"), q(build_dir)
    name = inputs.arch.image_name
    return _locked(
        lineage,
        f"rm -rf {staging} && mkdir -p {staging} && "
        f"cp {q(lineage.obj + '/' + inputs.arch.image)} {staging}/{q(name)} && "
        f"cp {q(lineage.obj + '/.config')} {staging}/{CONFIG_NAME} && "
        f"rm -rf {target} && mv {staging} {target} && "
        f"cd {target} && sha256sum {q(name)} {CONFIG_NAME}",
    )


def parse_sums(output: str) -> dict[str, str]:
    """`sha256sum` lines as {file name: hex digest}."""
    sums: dict[str, str] = {}
    for line in output.splitlines():
        digest, _, name = line.partition("  ")
        if re.fullmatch(r"[0-9a-f]{64}", digest):
            sums[name.strip()] = digest
    return sums


def kconfig_grep_command(lineage: Lineage, symbols: Sequence[str]) -> str:
    """Where the tree defines `symbols`, with the lines after each definition (its type,
    prompt and `depends on`); file names end in NUL so no path can be misparsed."""
    names = [s for s in symbols if re.fullmatch(r"[A-Za-z0-9_]+", s)]
    if not names:
        return "true"
    pattern = rf"^[[:space:]]*(menu)?config[[:space:]]+({'|'.join(names)})[[:space:]]*$"
    return (
        f"cd {q(lineage.src)} && grep -rEnZ -A12 --include='Kconfig*' -e {q(pattern)} . "
        '|| [ "$?" -eq 1 ]'
    )
