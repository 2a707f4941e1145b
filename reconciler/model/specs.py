"""The spec kinds users commit to the spec repo: what they want tested, where and how.

Pure data. Every model forbids unknown keys, so a typo in a spec is an error, never a silently
ignored field. Cross-document references (a Branch naming a Profile) are checked by the loader,
which knows every document at once; these models check what one document can check alone.
"""

from __future__ import annotations

import builtins
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reconciler.model.make_flags import make_flag_problem

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]

# A git ref as a user writes it: a branch, tag or commit. It reaches git only as an argument
# after `--` or via `rev-parse --verify`, but we still refuse what git itself refuses
# (git-check-ref-format) plus a leading '-', so it can never be read as an option.
_REF_FORBIDDEN = re.compile(
    r"(^-)|(\.\.)|(@\{)|([\x00-\x20\x7f~^:?*\[\\])|(/$)|(\.lock$)|(^/)|(//)"
)


def _check_ref(value: str) -> str:
    if not value or _REF_FORBIDDEN.search(value) or value.endswith("."):
        raise ValueError(
            f"{value!r} is not a valid git ref (see git-check-ref-format): "
            "use a branch, tag or full commit id"
        )
    return value


GitRef = Annotated[str, StringConstraints(min_length=1, max_length=255)]

ALLOWED_URL_SCHEMES = ("file", "git", "http", "https", "ssh")
"""Transports a spec may name. Not `ext::` (runs a command), `fd::`, or any other
`<transport>::` remote helper; git is also run with GIT_ALLOW_PROTOCOL set to these."""
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>.*)$", re.DOTALL)


def check_git_url(value: str) -> str:
    """A repository URL as git reads it, refused where git (or ssh) would read part of it as an
    option or run a command: a leading `-`, a host or user starting with `-`
    (`ssh://-oProxyCommand=…`), a `<transport>::` helper (`ext::sh -c …`), a scheme other than
    file, git, http, https and ssh, or a control character."""
    if not value or value != value.strip():
        raise ValueError("a repository URL must not be empty or start or end with white space")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("a repository URL must not contain control characters")
    if value.startswith("-"):
        raise ValueError(f"{value!r} starts with '-', which git would read as an option")
    if _HELPER.match(value):
        raise ValueError(
            f"{value!r} names a git remote helper (`transport::`), which can run commands;"
            f" use a {', '.join(ALLOWED_URL_SCHEMES)} URL"
        )
    scheme = _SCHEME.match(value)
    if scheme is not None:
        if scheme["scheme"].lower() not in ALLOWED_URL_SCHEMES:
            raise ValueError(
                f"{value!r} uses transport {scheme['scheme']!r}; a spec may name"
                f" {', '.join(ALLOWED_URL_SCHEMES)}"
            )
        user, _, host = scheme["rest"].split("/", 1)[0].rpartition("@")
        if user.startswith("-") or host.startswith("-"):
            raise ValueError(f"{value!r} has a user or host starting with '-', an ssh option")
        return value
    if value.startswith(("/", "./", "../")) or value in (".", ".."):
        return value  # a local path
    scp = _SCP_LIKE.match(value)
    if scp is not None and (scp["host"].startswith("-") or (scp["user"] or "").startswith("-")):
        raise ValueError(f"{value!r} has a user or host starting with '-', an ssh option")
    return value


GitUrl = Annotated[str, StringConstraints(min_length=1, max_length=4096)]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_environment(env: dict[str, str]) -> dict[str, str]:
    """Environment variables a process can be given: a plain name (no `=`, space or NUL) and a
    value without NUL; anything else cannot reach a process and would fail only on a worker."""
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not an environment variable name: use letters, digits and _,"
                " not starting with a digit"
            )
        if "\x00" in value:
            raise ValueError(f"the value of {name} holds a NUL byte, which no environment can")
    return env


_COMPILER_VERSION = r"(-[0-9]+(\.[0-9]+)*)?"
TOOLCHAIN_PATTERN = (
    r"^((gcc|clang)"
    + _COMPILER_VERSION
    + r"|/nix/store/[0-9a-df-np-sv-z]{32}-(gcc|clang)[A-Za-z0-9+._-]*"
    + r"|(/[A-Za-z0-9+._-]+)+/(gcc|clang)"
    + _COMPILER_VERSION
    + r")$"
)
"""The toolchains a Profile may name (core.toolchain reads them): `gcc`, `gcc-N`, `clang`,
`clang-N`, an absolute path to such a binary, or a Nix store path of a gcc or clang package.
Plain path characters only: a toolchain reaches a worker's shell as one quoted argument."""
TOOLCHAIN_VARIABLES = ("CC", "CXX", "HOSTCC", "HOSTCXX", "LLVM")
"""Variables the toolchain sets for a build: a profile may not set them itself."""


class HarnessType(StrEnum):
    COMMAND = "command"
    KTEST = "ktest"
    FSTESTS = "fstests"
    KSELFTEST = "kselftest"
    VM = "vm"
    """Tests run inside a VM booted from the built kernel (the `kbuild` recipe)."""


class OutputFormat(StrEnum):
    TAP = "tap"
    JUNIT = "junit"
    KTEST = "ktest"
    """ktest console lines: `========= PASSED name`, `FAILED`, `NOTRUN` (`vm` harness)."""


class Spec(BaseModel):
    """Fields every document has."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Name
    """Unique among documents of the same kind."""
    description: str | None = None
    """Free text for humans; never part of any identity."""


class Repo(Spec):
    """A git remote holding the sources under test."""

    kind: Literal["Repo"]
    url: GitUrl
    """Where the reconciler fetches from. A relative path is relative to the spec file."""
    fetch_url: GitUrl | None = None
    """Where workers fetch from, when it differs from `url` (a mirror near the farm)."""

    _url_ok = field_validator("url")(check_git_url)
    _fetch_url_ok = field_validator("fetch_url")(lambda v: v if v is None else check_git_url(v))


class Branch(Spec):
    """A ref to keep tested: its newest `max_commits` commits, each under every profile."""

    kind: Literal["Branch"]
    repo: Name
    ref: GitRef
    """Branch name in the repo (e.g. `bcachefs-testing` or `refs/heads/main`)."""
    max_commits: int = Field(default=10, ge=1, le=10_000)
    """How many of the newest first-parent commits to keep tested."""
    test_groups: list[Name] = Field(min_length=1)
    profiles: list[Name] = Field(min_length=1)
    priority: int = 0
    """Higher runs first among commits of the same age."""
    baseline: Name | None = None
    """A Baseline to compare this branch's results with."""
    suspend: bool = False
    """Keep the spec but schedule nothing for it."""

    _ref_ok = field_validator("ref")(_check_ref)


class TestGroup(Spec):
    """A set of tests run by one harness."""

    __test__ = False  # not a pytest class, despite its name

    kind: Literal["TestGroup"]
    harness: Name
    tests: list[str] = Field(min_length=1)
    """Test files, as paths or globs (`*` within a directory, `**` across directories),
    relative to the harness checkout (or the source tree when the harness has no url)."""
    exclude: list[str] = Field(default_factory=list)
    """Globs of test files, or `file:subtest` names, to leave out (expunges)."""
    subtests: dict[str, list[str]] = Field(default_factory=dict)
    """Subtests listed explicitly per test file; others are enumerated by the harness."""
    timeout: int = Field(default=600, ge=1)
    """Seconds one subtest may run before it counts as `timeout`. Part of result identity."""
    priority: int = 0
    select: list[str] = Field(default_factory=list)
    """Harness-level groups to select, e.g. fstests groups `[auto]` (`_begin_fstest` lines)."""
    expunges: list[str] = Field(default_factory=list)
    """Expunge list files (one test per line, `#` comments), relative to the spec file."""
    confirm_failures: int = Field(default=0, ge=0, le=20)
    """Re-run a failing subtest this many times, recording every attempt: a test that fails
    and then passes is flaky, never passed."""
    worker_tags: list[str] = Field(default_factory=list)
    """Tags a worker host must have to run this group (e.g. `nvme`, `kvm`)."""


class Runtime(BaseModel):
    """How a built kernel is run: inputs of result identity, not of build identity."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    mem: str | None = Field(default=None, pattern=r"^[0-9]+[KMGT]?$")
    """VM memory, e.g. `4G`."""
    cpus: int | None = Field(default=None, ge=1)
    fstype: str | None = None
    """Filesystem under test (fstests FSTYP)."""
    mkfs_options: str | None = None
    mount_options: str | None = None
    section: str | None = None
    """fstests config section."""
    kernel_cmdline: str | None = None
    """Appended to the VM's kernel command line (`vm` harness)."""
    qemu_args: list[str] = Field(default_factory=list)
    """Extra QEMU arguments, one per item (`vm` harness)."""
    scratch_disks: list[Annotated[str, StringConstraints(pattern=r"^[0-9]+[KMGT]?$")]] = Field(
        default_factory=list, max_length=8
    )
    """Sizes of empty disks created for each batch and attached to the VM as `/dev/vda`,
    `/dev/vdb`, ... (`vm` harness), e.g. `[64M]`."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of the test run."""

    _env_ok = field_validator("env")(check_environment)


class Profile(Spec):
    """How a kernel is built (build inputs) and run (runtime inputs)."""

    kind: Literal["Profile"]
    arch: str = Field(default="x86_64", pattern=r"^[a-z0-9_]+$")
    base_config: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]*config$")
    """The config make target the fragment is merged onto: `defconfig` (the default),
    `tinyconfig`, `allnoconfig`, `x86_64_defconfig`, ... (`make help` in the tree lists them).
    A plain target name, never shell syntax: it reaches the worker's shell as one argument."""
    kconfig: list[str] = Field(default_factory=list)
    """Config fragment: `KASAN=y`, `CONFIG_KASAN=y` or `KASAN=n`."""
    toolchain: str = Field(default="gcc", json_schema_extra={"pattern": TOOLCHAIN_PATTERN})
    """The compiler: `gcc`, `gcc-14`, `clang`, `clang-18`, an absolute path to a gcc or clang
    binary, or a Nix store path of a gcc or clang package (`/nix/store/<hash>-gcc-13.2.0`).
    Resolved to a concrete compiler (its `--version`, or the store path) for build identity,
    and checked on each host before it builds."""
    make_flags: list[str] = Field(default_factory=list)
    """Options and variable definitions for make: `-j8`, `V=1`, `KCFLAGS=-O2 -g`. Only
    options that change scheduling or verbosity, and plain values (model.make_flags)."""
    build_env: dict[str, str] = Field(default_factory=dict)
    """Environment of the build (e.g. CFLAGS): part of build identity. The compiler variables
    (CC, CXX, HOSTCC, HOSTCXX, LLVM) come from `toolchain`."""
    runtime: Runtime = Field(default_factory=Runtime)

    @field_validator("toolchain")
    @classmethod
    def _known_toolchain(cls, toolchain: str) -> str:
        # Checked here rather than by `pattern` so the message is not a regular expression.
        if re.fullmatch(TOOLCHAIN_PATTERN, toolchain) is None:
            raise ValueError(
                f"{toolchain!r} is not a toolchain a build can use: write gcc, gcc-N, clang,"
                " clang-N, an absolute path to a gcc or clang binary, or a Nix store path of a"
                " gcc or clang package"
            )
        return toolchain

    @field_validator("build_env", "make_flags")
    @classmethod
    def _no_compiler_variables(
        cls, value: dict[str, str] | list[str], info: ValidationInfo
    ) -> dict[str, str] | list[str]:
        # build_env keys, or make_flags' `NAME=value` definitions.
        names = (
            value if isinstance(value, dict) else [f.partition("=")[0] for f in value if "=" in f]
        )
        for name in TOOLCHAIN_VARIABLES:
            if name in names:
                raise ValueError(
                    f"{info.field_name} sets {name}, which `toolchain` decides: write"
                    " `toolchain: clang` (or gcc-N, clang-N, a path) instead"
                )
        return value

    _build_env_ok = field_validator("build_env")(check_environment)

    @field_validator("make_flags")
    @classmethod
    def _safe_make_flags(cls, flags: list[str]) -> list[str]:
        for flag in flags:
            problem = make_flag_problem(flag)
            if problem is not None:
                raise ValueError(problem)
        return flags

    @field_validator("kconfig")
    @classmethod
    def _kconfig_lines(cls, lines: list[str]) -> list[str]:
        seen: set[str] = set()
        for line in lines:
            if not re.fullmatch(r"(CONFIG_)?[A-Za-z0-9_]+=.*", line):
                raise ValueError(f"{line!r} is not a config option: write it as NAME=value")
            option = line.partition("=")[0].removeprefix("CONFIG_")
            if option in seen:
                raise ValueError(f"CONFIG_{option} is set more than once: keep one line")
            seen.add(option)
        return lines


class Baseline(Spec):
    """A pinned ref whose results are kept and compared against."""

    kind: Literal["Baseline"]
    repo: Name
    ref: GitRef
    """A tag or commit; resolved once and pinned."""
    test_groups: list[Name] = Field(min_length=1)
    profiles: list[Name] = Field(min_length=1)
    priority: int = 0

    _ref_ok = field_validator("ref")(_check_ref)


class HarnessDependency(BaseModel):
    """A repository a harness's tests need beside it (a ktest `require-git` dependency), pinned."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Name
    """The directory ktest gives it under `ktest_deps_dir`: the basename of `require-git`'s
    second argument, else of its URL without `.git` (`xfstests`, `bcachefs-tools`)."""
    url: GitUrl
    """Where the reconciler and workers fetch it (may be a mirror of the URL the tests name)."""
    ref: GitRef
    """Branch, tag or commit; resolved to a commit whose tree enters the identity of exactly
    the results whose test files use this dependency."""

    _ref_ok = field_validator("ref")(_check_ref)
    _url_ok = field_validator("url")(check_git_url)


class Harness(Spec):
    """A test suite and its adapter, pinned to a revision that is part of result identity."""

    kind: Literal["Harness"]
    type: HarnessType
    url: GitUrl | None = None
    """Repo holding the suite; absent when the tests live in the source tree."""
    ref: GitRef | None = None
    """Revision of `url` to use; its tree hash enters every result identity."""
    build: str | None = None
    """`command` harness: shell command that builds the source checkout."""
    list: str | None = None
    """`command` and `vm` harness: command printing one subtest name per line for `{test}`,
    run on the reconciler host in a checkout of the tests."""
    run: str | None = None
    """`command` harness: command run for a batch; `{test}` and `{subtests}` are substituted,
    each argument shell-quoted. `vm` harness: the same, run by busybox `sh` inside the VM in
    the tests directory (default `sh {test} {subtests}`)."""
    output: OutputFormat = OutputFormat.TAP
    dependencies: builtins.list[HarnessDependency] = Field(default_factory=builtins.list)
    """`ktest` harness: the repositories its libraries and tests `require-git`, each pinned.
    Provisioned into a private `ktest_deps_dir` for listing and for runs; a `require-git`
    of a name not listed here blocks the test files that use it."""
    list_timeout: int = Field(default=60, ge=1, le=3600)
    """Seconds one test file's listing may take; a listing that runs longer is killed and the
    file is blocked (the rest of the plan goes on)."""

    _ref_ok = field_validator("ref")(lambda v: v if v is None else _check_ref(v))
    _url_ok = field_validator("url")(lambda v: v if v is None else check_git_url(v))

    @model_validator(mode="after")
    def _consistent(self) -> Harness:
        if self.url is not None and self.ref is None:
            raise ValueError("a harness with a url needs a ref to pin it to")
        if self.type is HarnessType.COMMAND and not self.run:
            raise ValueError("a command harness needs a `run` command")
        if self.dependencies and self.type is not HarnessType.KTEST:
            raise ValueError("`dependencies` are provisioned for `ktest` harnesses only")
        names = [dependency.name for dependency in self.dependencies]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"dependency {', '.join(map(repr, repeated))} is listed twice")
        return self


class WorkerHost(BaseModel):
    """One worker host reachable over SSH."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]*$")
    port: int = Field(default=22, ge=1, le=65535)
    slots: int = Field(default=1, ge=1, le=1024)
    """Batches this host runs at once (at most 1024)."""
    arch: str = Field(default="x86_64", pattern=r"^[a-z0-9_]+$")
    tags: list[str] = Field(default_factory=list)
    identity_file: str | None = None
    """Path of the private key on the reconciler host; the key itself never enters a spec."""


class WorkerPool(Spec):
    kind: Literal["WorkerPool"]
    hosts: list[WorkerHost] = Field(min_length=1)


SPEC_KINDS: dict[str, type[Spec]] = {
    "Repo": Repo,
    "Branch": Branch,
    "TestGroup": TestGroup,
    "Profile": Profile,
    "Baseline": Baseline,
    "Harness": Harness,
    "WorkerPool": WorkerPool,
}

AnySpec = Annotated[
    Repo | Branch | TestGroup | Profile | Baseline | Harness | WorkerPool,
    Field(discriminator="kind"),
]
