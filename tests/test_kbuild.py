"""The `kbuild` recipe: its pure parts, and its running on a real host with a toy kernel tree.

The toy tree is a real git repo whose Makefile and `merge_config.sh` answer the targets the
recipe uses in milliseconds, so the orchestration (lineage, flock, verdicts, records, a build
orphaned by a killed reconciler) is tested with real git, make and sh. Real kernels are built in
test_kbuild_real.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.store.files import ResultStore
from reconciler.adapters.toolchain_probe import probe_toolchain
from reconciler.app.kernel_build import build_dir
from reconciler.app.worker_setup import BuildOutcome, HostWorkspace, PreparationError
from reconciler.core import kbuild
from reconciler.core.identity import BUILD_RECIPES, build_identity
from reconciler.core.kconfig_check import (
    FragmentProblem,
    KconfigEntry,
    ProblemKind,
    check_fragment,
    describe_problems,
    kconfig_definitions,
    unmet_options,
)
from reconciler.core.toolchain import toolchain_identity
from reconciler.model.execution import BuildJob, SourceCheckout
from reconciler.model.results import BuildStatus
from reconciler.model.specs import HarnessType, Profile

from .farms import git

ROOT = Path(__file__).resolve().parent.parent
CCACHE = shutil.which("ccache") is not None


def profile(name: str = "tiny", **fields: object) -> Profile:
    return Profile.model_validate({"kind": "Profile", "name": name, **fields})


def kernel_job(*, url: str, commit: str, tree: str, profile: Profile) -> BuildJob:
    """A `kbuild` build job as the planner makes it, with a real build identity (the
    toolchain resolved on this machine, as the planning host does)."""
    identity = build_identity(
        source_tree=tree,
        profile=profile,
        recipe=BUILD_RECIPES[HarnessType.VM],
        toolchain=toolchain_identity(probe_toolchain(profile.toolchain)),
    )
    return BuildJob(
        build=identity.hex,
        preimage=identity.preimage,
        source=SourceCheckout(url=url, commit=commit, tree=tree),
        harness="vm",
        profile=profile.name,
        arch=profile.arch,
        build_env=dict(profile.build_env),
        make_flags=tuple(profile.make_flags),
    )


def rev(repo: Path, what: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", what], check=True, capture_output=True, text=True
    ).stdout.strip()


def job_at(repo: Path, ref: str, prof: Profile) -> BuildJob:
    return kernel_job(
        url=str(repo), commit=rev(repo, ref), tree=rev(repo, f"{ref}^{{tree}}"), profile=prof
    )


# --- pure parts ---------------------------------------------------------------------------


def test_inputs_come_from_the_build_identity() -> None:
    job = kernel_job(
        url="https://example.org/linux.git",
        commit="c" * 40,
        tree="t" * 40,
        profile=profile(
            kconfig=["SWAP=n", "CONFIG_64BIT=y", "LOCALVERSION=-x"], make_flags=["W=1"]
        ),
    )
    inputs = kbuild.kbuild_inputs(job)
    assert (inputs.base_config, inputs.fragment, inputs.make_flags, inputs.arch.target) == (
        "defconfig",
        ("CONFIG_64BIT=y", "CONFIG_SWAP=n"),
        ("W=1",),
        "bzImage",
    )
    gcc_version = subprocess.run(
        ["gcc", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    assert (inputs.toolchain.name, inputs.toolchain_version) == ("gcc", gcc_version)
    assert kbuild.toolchain_variables(inputs, ccache=True) == ("CC=ccache gcc", "HOSTCC=gcc")
    assert kbuild.uses_kbuild(job.preimage)
    assert kbuild.fragment_text(inputs) == (
        "CONFIG_64BIT=y\nCONFIG_SWAP=n\n# CONFIG_LOCALVERSION_AUTO is not set\n"
    )


def test_an_arch_without_a_known_boot_image_is_refused() -> None:
    job = kernel_job(url="u", commit="c", tree="t", profile=profile(arch="mips"))
    with pytest.raises(kbuild.RecipeInputError, match="arch 'mips' is not one"):
        kbuild.kbuild_inputs(job)


def test_a_job_whose_identity_names_no_resolved_toolchain_is_refused() -> None:
    job = kernel_job(url="u", commit="c", tree="t", profile=profile())
    # An identity made before toolchains were resolved held only a name.
    old = BuildJob(**{**job.__dict__, "preimage": {**job.preimage, "toolchain": "gcc"}})
    with pytest.raises(kbuild.RecipeInputError, match="names no resolved toolchain"):
        kbuild.kbuild_inputs(old)


def test_a_lineage_is_per_repo_profile_and_arch() -> None:
    key = kbuild.lineage_key(url="u", profile="tiny", arch="x86_64")
    assert key.startswith("tiny-x86_64-")
    assert key == kbuild.lineage_key(url="u", profile="tiny", arch="x86_64")
    others = {
        kbuild.lineage_key(url="v", profile="tiny", arch="x86_64"),
        kbuild.lineage_key(url="u", profile="kasan", arch="x86_64"),
        kbuild.lineage_key(url="u", profile="tiny", arch="aarch64"),
    }
    assert key not in others and len(others) == 3


@pytest.mark.parametrize(
    ("requested", "config", "unmet"),
    [
        ("CONFIG_A=y", "CONFIG_A=y\n", False),
        ("CONFIG_A=y", "# CONFIG_A is not set\n", True),
        ("CONFIG_A=y", "", True),
        ("CONFIG_A=m", "CONFIG_A=y\n", True),
        ("CONFIG_A=n", "# CONFIG_A is not set\n", False),
        ("CONFIG_A=n", "", False),
        ("CONFIG_A=n", "CONFIG_A=y\n", True),
        ('CONFIG_S="a b"', 'CONFIG_S="a b"\n', False),
        ("CONFIG_S=ab", 'CONFIG_S="ab"\n', False),
        ("CONFIG_H=1000", "CONFIG_H=0x1000\n", True),
        ("CONFIG_H=0x1000", "CONFIG_H=0x1000\n", False),
        ("CONFIG_I=17", "CONFIG_I=18\n", True),
    ],
)
def test_an_option_is_met_only_by_the_value_asked_for(
    requested: str, config: str, unmet: bool
) -> None:
    assert unmet_options([requested], config) == ([requested.partition("=")[0]] if unmet else [])


def test_an_option_the_tree_lacks_is_unknown_and_one_it_defines_is_not_applied() -> None:
    config = "# CONFIG_TMPFS is not set\nCONFIG_64BIT=y\nCONFIG_SWAP=y\n"
    fragment = ["CONFIG_64BIT=y", "CONFIG_NOSUCH=y", "CONFIG_SWAP=n", "CONFIG_TMPFS=y"]
    tmpfs = KconfigEntry("fs/Kconfig:164", ("SHMEM",))
    swap = KconfigEntry("mm/Kconfig:15", ())
    assert check_fragment(fragment, config, {"TMPFS": [tmpfs], "SWAP": [swap]}) == [
        FragmentProblem("CONFIG_NOSUCH", "y", None, ProblemKind.UNKNOWN),
        FragmentProblem("CONFIG_SWAP", "n", "y", ProblemKind.NOT_APPLIED, (swap,)),
        FragmentProblem("CONFIG_TMPFS", "y", "n", ProblemKind.NOT_APPLIED, (tmpfs,)),
    ]


GREP_OUTPUT = (
    "./fs/Kconfig\x00164:config TMPFS\n"
    './fs/Kconfig\x00165-\tbool "Tmpfs virtual memory file system support"\n'
    "./fs/Kconfig\x00166-\tdepends on SHMEM\n"
    "./fs/Kconfig\x00167-\tselect MEMFD_CREATE\n"
    "./fs/Kconfig\x00168-\n"
    "./fs/Kconfig\x00169-config TMPFS_POSIX_ACL\n"
    "./fs/Kconfig\x00170-\tdepends on NOT_OURS\n"
    "--\n"
    "./drivers/a-12-b/Kconfig\x007:menuconfig WIDGET\n"
    "./drivers/a-12-b/Kconfig\x008-\tdepends on PCI && !X86_32\n"
    "./drivers/a-12-b/Kconfig\x009-\tdepends on HAS_IOMEM || COMPILE_TEST\n"
    "--\n"
    "./arch/arm64/Kconfig\x002000:config ARM64_SVE\n"
    "./arch/x86/Kconfig\x003:config 64BIT\n"
)


def test_kconfig_definitions_are_read_from_grep_output_for_one_arch() -> None:
    assert kconfig_definitions(GREP_OUTPUT, srcarch="x86") == {
        "TMPFS": [KconfigEntry("fs/Kconfig:164", ("SHMEM",))],
        "WIDGET": [
            KconfigEntry(
                "drivers/a-12-b/Kconfig:7", ("PCI && !X86_32", "HAS_IOMEM || COMPILE_TEST")
            )
        ],
        "64BIT": [KconfigEntry("arch/x86/Kconfig:3", ())],
    }
    assert "ARM64_SVE" in kconfig_definitions(GREP_OUTPUT, srcarch="arm64")


def test_a_failed_check_says_which_option_why_and_what_to_do() -> None:
    config = "# CONFIG_TMPFS is not set\n# CONFIG_SHMEM is not set\n"
    fragment = ["CONFIG_NOSUCH=y", "CONFIG_TMPFS=y"]
    defined = kconfig_definitions(GREP_OUTPUT, srcarch="x86")
    text = describe_problems(
        check_fragment(fragment, config, defined),
        config_text=config,
        arch="x86_64",
        base_config="tinyconfig",
    )
    assert text.splitlines() == [
        "kbuild: the resolved .config lacks 2 option(s) the profile's kconfig asks for"
        " (base tinyconfig, ARCH x86_64); the kernel was not built:",
        "  CONFIG_NOSUCH=y: unknown to this tree: no Kconfig file defines NOSUCH for x86_64"
        " (misspelt, renamed, removed, or only on another architecture);"
        " fix or remove it in the profile's kconfig",
        "  CONFIG_TMPFS=y: olddefconfig left it not set: a dependency is not met, or it has no"
        " prompt and nothing selects it. Defined at fs/Kconfig:164",
        "      `depends on SHMEM` (CONFIG_SHMEM not set)",
        "      add what it needs to the profile's kconfig (or drop the option);"
        " `make menuconfig` and `/` then the name show all its dependencies",
    ]


@pytest.mark.parametrize("base", ["tinyconfig; rm -rf ~", "$(reboot)config", "mrproper", ""])
def test_base_config_is_a_config_target_never_shell_syntax(base: str) -> None:
    with pytest.raises(ValidationError, match="base_config"):
        profile(base_config=base)
    for good in ("tinyconfig", "x86_64_defconfig", "kvm_guest.config"):
        assert profile(base_config=good).base_config == good


def test_the_worktree_is_moved_to_the_commit_under_any_workdir_name(tmp_path: Path) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    cache = tmp_path / "cache.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(cache)], check=True)
    lineage = kbuild.Lineage(str(tmp_path / "it's a $(touch pwned) `dir`"))
    command = kbuild.prepare_command(lineage, cache=str(cache), commit=rev(repo, "HEAD"))
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    prepared = kbuild.parse_prepared(result.stdout)
    assert prepared.timestamp == "Sat, 1 Jan 2022 00:00:00 +0000"
    assert (Path(lineage.src) / "VERSION").read_text() == "1\n"
    assert not list(tmp_path.rglob("pwned"))


# --- on a real host, with a toy kernel tree -------------------------------------------------

TOY_MAKEFILE = """\
# A stand-in for the kernel's Makefile: the targets the kbuild recipe runs, in milliseconds.
# Each target notes itself and the tree's VERSION in $FAKE_JOURNAL.
note = echo "$@ $$(cat VERSION)" >> "$$FAKE_JOURNAL"

tinyconfig defconfig:
\t@mkdir -p $(O)
\t@printf 'CONFIG_64BIT=y\\n# CONFIG_SWAP is not set\\n' > $(O)/.config
\t@$(note)

olddefconfig:
\t@$(note)

bzImage:
\t@echo "begin $$(cat VERSION)" >> "$$FAKE_JOURNAL"
\t@i=0; while [ -n "$$FAKE_RELEASE" ] && [ ! -e "$$FAKE_RELEASE" ] && [ $$i -lt 300 ]; do \\
\t    sleep 0.1; i=$$((i + 1)); done
\t@echo "waited $$(cat VERSION)" >> "$$FAKE_JOURNAL"
\t@if grep -q '#error' main.c; then echo 'main.c:1:2: error: #error broken'; exit 2; fi
\t@echo "  CC      main.o"
\t@mkdir -p $(O)/arch/x86/boot
\t@{ cat main.c; echo "$$KBUILD_BUILD_TIMESTAMP $$KBUILD_BUILD_USER@$$KBUILD_BUILD_HOST" \\
\t   "#$$KBUILD_BUILD_VERSION CC=$(CC) HOSTCC=$(HOSTCC) ARCH=$(ARCH)" \\
\t   "LOCALVERSION=$${LOCALVERSION-unset}"; \\
\t  } > $(O)/arch/x86/boot/bzImage
\t@echo "end $$(cat VERSION)" >> "$$FAKE_JOURNAL"
"""

TOY_MERGE_CONFIG = """\
#!/bin/sh
# merge_config.sh -m -O <objdir> <base> <fragment>: the fragment's lines win (read last).
cat "$5" >> "$4"
"""


def toy_kernel_repo(repo: Path, *, commits: int = 2) -> Path:
    """A repo with a toy kernel tree, commits 0..n-1 (VERSION, main.c), dated 2021, 2022, ..."""
    (repo / "scripts/kconfig").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "Makefile").write_text(TOY_MAKEFILE)
    merge = repo / "scripts/kconfig/merge_config.sh"
    merge.write_text(TOY_MERGE_CONFIG)
    merge.chmod(0o755)
    for number in range(commits):
        (repo / "VERSION").write_text(f"{number}\n")
        (repo / "main.c").write_text(f"int main(void) {{ return {number}; }}\n")
        commit(repo, f"commit {number}", date=f"{2021 + number}-01-01T00:00:00+00:00")
    return repo


def commit(repo: Path, message: str, *, date: str = "2023-01-01T00:00:00+00:00") -> None:
    env = {**os.environ, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
    for args in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e", *args],
            check=True,
            env=env,
            capture_output=True,
        )


class Farm:
    """A local host and a store, and what building on them gives."""

    def __init__(self, tmp_path: Path, store: ResultStore) -> None:
        self.tmp_path = tmp_path
        self.store = store
        self.journal = tmp_path / "journal"
        self.journal.touch()
        self.workspace = self.fresh_workspace()

    def fresh_workspace(self) -> HostWorkspace:
        """A workspace as a newly started reconciler has it: nothing known in memory."""
        host = LocalHost(workdir=self.tmp_path / "work", slots=1)
        return HostWorkspace(host=host, store=self.store, clock=time.time)

    def profile(
        self, name: str = "tiny", *, build_env: dict[str, str] | None = None, **fields: object
    ) -> Profile:
        env = {"FAKE_JOURNAL": str(self.journal), **(build_env or {})}
        return profile(name, **{"base_config": "tinyconfig", "build_env": env, **fields})

    def build(self, job: BuildJob) -> tuple[str, BuildOutcome]:
        return asyncio.run(self.workspace.ensure_build(job, build_command=None))

    def log(self, job: BuildJob) -> str:
        record = self.store.get_build(job.build)
        assert record is not None and record.log is not None
        return self.store.read_log(record.log).decode()

    def noted(self) -> list[str]:
        return self.journal.read_text().splitlines()


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    with ResultStore(tmp_path / "store") as store:
        yield Farm(tmp_path, store)


def test_a_kernel_build_keeps_its_image_and_config_and_records_their_hashes(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    job = job_at(repo, "HEAD", farm.profile(kconfig=["SWAP=n"]))
    directory, outcome = farm.build(job)
    assert (outcome, directory) == (
        BuildOutcome(BuildStatus.PASS),
        build_dir(farm.workspace, job.build),
    )
    image = Path(kbuild.boot_image(directory, arch="x86_64"))
    assert image.read_text().splitlines() == [
        "int main(void) { return 1; }",
        "Sat, 1 Jan 2022 00:00:00 +0000 reconciler@reconciler #1"
        f" CC={'ccache gcc' if CCACHE else 'gcc'} HOSTCC=gcc ARCH=x86_64 LOCALVERSION=",
    ]
    record = farm.store.get_build(job.build)
    assert record is not None
    assert (record.status, record.image_hash, record.resolved_config_hash) == (
        BuildStatus.PASS,
        hashlib.sha256(image.read_bytes()).hexdigest(),
        hashlib.sha256((Path(directory) / "config").read_bytes()).hexdigest(),
    )
    log = farm.log(job)
    assert "kbuild: all 1 options of the fragment are in .config" in log
    assert "$ make -C " in log and " tinyconfig\n" in log and "  CC      main.o" in log
    assert not list(Path(directory).parent.glob("*.partial"))


def test_a_build_this_host_holds_is_not_redone_and_a_failed_one_never(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    good = job_at(repo, "HEAD~1", farm.profile())
    (repo / "main.c").write_text("#error broken\n")
    commit(repo, "broken")
    bad = job_at(repo, "HEAD", farm.profile())
    assert farm.build(good)[1].status is BuildStatus.PASS
    assert farm.build(bad)[1].status is BuildStatus.FAIL
    farm.journal.write_text("")
    farm.workspace = farm.fresh_workspace()
    assert farm.build(good)[1] == BuildOutcome(BuildStatus.PASS, "built earlier on this host")
    assert farm.build(bad)[1] == BuildOutcome(BuildStatus.FAIL, "the stored build failed")
    assert farm.noted() == []


def test_a_compile_error_is_a_fail_verdict_with_the_compiler_output(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    (repo / "main.c").write_text("#error broken\n")
    commit(repo, "broken")
    job = job_at(repo, "HEAD", farm.profile())
    assert farm.build(job)[1] == BuildOutcome(BuildStatus.FAIL, "make exited 2")
    log = farm.log(job)
    assert "main.c:1:2: error: #error broken" in log
    assert log.endswith("kbuild: make exited 2\n")
    assert not Path(build_dir(farm.workspace, job.build)).exists()


def test_a_config_target_the_tree_lacks_is_a_fail_verdict_that_says_so(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    job = job_at(repo, "HEAD", farm.profile(base_config="nosuchconfig"))
    assert farm.build(job)[1].status is BuildStatus.FAIL
    log = farm.log(job)
    assert "No rule to make target 'nosuchconfig'" in log
    assert "is 'nosuchconfig' a config target of this tree (`make help` lists them)?" in log


def test_a_commit_the_host_cannot_fetch_is_infrastructure_not_a_verdict(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    job = kernel_job(url=str(repo), commit="0" * 40, tree="1" * 40, profile=farm.profile())
    with pytest.raises(PreparationError, match="fetching 000000000000 failed"):
        farm.build(job)
    assert farm.store.get_build(job.build) is None


def test_a_lineage_left_by_a_git_killed_mid_checkout_still_builds(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    first = job_at(repo, "HEAD~1", farm.profile())
    assert farm.build(first)[1].status is BuildStatus.PASS
    (src,) = (tmp_path / "work/kbuild").glob("tiny-*/src")
    (src / ".git/index.lock").touch()
    farm.workspace = farm.fresh_workspace()
    assert farm.build(job_at(repo, "HEAD", farm.profile()))[1].status is BuildStatus.PASS


ORPHAN = """
import asyncio, sys, time
from collections.abc import Iterator
from pathlib import Path
from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.store.files import ResultStore
from tests.test_kbuild import job_at, profile
from reconciler.app.worker_setup import HostWorkspace

tmp, release = Path(sys.argv[1]), sys.argv[2]
prof = profile("tiny", base_config="tinyconfig",
               build_env={"FAKE_JOURNAL": str(tmp / "journal"), "FAKE_RELEASE": release})
with ResultStore(tmp / "orphan-store") as store:
    host = LocalHost(workdir=tmp / "work", slots=1)
    workspace = HostWorkspace(host=host, store=store, clock=time.time)
    asyncio.run(workspace.ensure_build(job_at(tmp / "repo", "HEAD~1", prof), build_command=None))
"""


@pytest.mark.timeout(60)
def test_a_build_of_a_killed_reconciler_dies_with_it_and_the_next_builds_cleanly(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    release = tmp_path / "release"
    reconciler = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(tmp_path), str(release)], cwd=ROOT
    )
    deadline = time.monotonic() + 30
    while "begin 0" not in farm.noted() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The local executor's supervisor stops the build's whole tree when its reconciler dies
    # (before it, the orphan lived on holding the lineage's flock, which kept the next build
    # from the tree until it ended): it never gets past its wait.
    reconciler.send_signal(signal.SIGKILL)
    reconciler.wait()
    assert farm.noted() == ["tinyconfig 0", "olddefconfig 0", "begin 0"]

    async def restarted() -> BuildOutcome:
        job = job_at(repo, "HEAD", farm.profile(build_env={"FAKE_RELEASE": str(release)}))
        build = asyncio.create_task(farm.workspace.ensure_build(job, build_command=None))
        await asyncio.sleep(1)
        release.touch()
        return (await build)[1]

    assert asyncio.run(restarted()).status is BuildStatus.PASS
    assert farm.noted() == [
        "tinyconfig 0",
        "olddefconfig 0",
        "begin 0",
        "tinyconfig 1",
        "olddefconfig 1",
        "begin 1",
        "waited 1",
        "end 1",
    ]


def test_a_passed_build_whose_image_this_host_lacks_is_built_again(
    tmp_path: Path, farm: Farm
) -> None:
    repo = toy_kernel_repo(tmp_path / "repo")
    job = job_at(repo, "HEAD", farm.profile())
    directory, _ = farm.build(job)
    shutil.rmtree(directory)
    farm.journal.write_text("")
    farm.workspace = farm.fresh_workspace()
    assert farm.build(job) == (directory, BuildOutcome(BuildStatus.PASS))
    assert farm.noted() == ["tinyconfig 1", "olddefconfig 1", "begin 1", "waited 1", "end 1"]
    assert Path(kbuild.boot_image(directory, arch="x86_64")).is_file()
