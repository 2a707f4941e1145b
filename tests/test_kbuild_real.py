"""The `kbuild` recipe building real Linux 6.1 kernels (tinyconfig + a fragment) on a local host.

Slow: one full build, one from scratch in a second lineage, and a few short ones that the
object directory makes incremental. Assertions are about what make did (its `CC` lines) and
what came out (hashes, the log), never about wall time.

The repo the host fetches from is a shared clone of the kernel example's linux.git
(`kernel_example_repos()`), which `make-repos.sh` leaves in one pack: fetching loose objects
would cost git a minute and a half of compression, a pack a few seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.store.files import ResultStore
from reconciler.app.worker_setup import BuildOutcome, HostWorkspace
from reconciler.core import kbuild
from reconciler.model.execution import BuildJob
from reconciler.model.results import BuildRecord, BuildStatus
from reconciler.model.specs import Profile

from .kernel_tree import BASELINE_TAG, kernel_example_repos
from .test_kbuild import CCACHE, job_at, profile

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FRAGMENT = ["64BIT=y", "PRINTK=y", "SWAP=n", "BLK_DEV_INITRD=y"]
"""On tinyconfig: options turned on, and one asked off that tinyconfig leaves out altogether.
BLK_DEV_INITRD builds the kernel's own initramfs, which is stamped with the build timestamp."""


def commit_change(repo: Path, *, parent: str, path: str, text: str, message: str) -> str:
    """A commit on `parent` whose `path` ends with `text` appended, made without a worktree."""

    def git(*args: str, stdin: str | None = None, **env: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args],
            input=stdin,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        ).stdout.strip()

    index = str(repo / f"index-{message.replace(' ', '-')}")
    original = git("cat-file", "blob", f"{parent}:{path}")
    blob = git("hash-object", "-w", "--stdin", stdin=original + "\n" + text)
    git("read-tree", parent, GIT_INDEX_FILE=index)
    git("update-index", "--cacheinfo", f"100644,{blob},{path}", GIT_INDEX_FILE=index)
    tree = git("write-tree", GIT_INDEX_FILE=index)
    identity = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
        "GIT_COMMITTER_DATE": "2023-02-01T10:00:00+00:00",
        "GIT_AUTHOR_DATE": "2023-02-01T10:00:00+00:00",
    }
    commit = git("commit-tree", tree, "-p", parent, "-m", message, **identity)
    git("update-ref", f"refs/heads/{message.replace(' ', '-')}", commit)
    return commit


@dataclass
class Built:
    job: BuildJob
    directory: Path
    outcome: BuildOutcome
    record: BuildRecord
    log: str
    seconds: float

    @property
    def compiled(self) -> list[str]:
        """The objects make compiled (its `CC` lines), in order."""
        return re.findall(r"^  CC      (\S+)$", self.log, flags=re.MULTILINE)


class KernelFarm:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "linux.git"
        subprocess.run(
            [
                "git",
                "clone",
                "-q",
                "--bare",
                "--shared",
                str(kernel_example_repos() / "linux.git"),
                str(self.repo),
            ],
            check=True,
        )

    def build(self, job: BuildJob, *, store: ResultStore) -> Built:
        workspace = HostWorkspace(
            host=LocalHost(workdir=self.root / "work", slots=1), store=store, clock=time.time
        )
        started = time.monotonic()
        directory, outcome = asyncio.run(workspace.ensure_build(job, build_command=None))
        seconds = time.monotonic() - started
        record = store.get_build(job.build)
        assert record is not None and record.log is not None
        log = store.read_log(record.log).decode(errors="replace")
        print(f"\n{job.profile} {job.source.commit[:12]}: {outcome.status} in {seconds:.0f} s")
        return Built(job, Path(directory), outcome, record, log, seconds)

    def job(self, commit: str, prof: Profile) -> BuildJob:
        return job_at(self.repo, commit, prof)

    def objdir(self, prof: Profile) -> Path:
        key = kbuild.lineage_key(url=str(self.repo), profile=prof.name, arch=prof.arch)
        return self.root / "work/kbuild" / key / "obj"


TINY = profile("tiny", base_config="tinyconfig", kconfig=FRAGMENT)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KernelFarm, ResultStore]]:
    farm = KernelFarm(tmp_path_factory.mktemp("kbuild-real"))
    with ResultStore(farm.root / "store") as store:
        yield farm, store


@pytest.fixture(scope="module")
def first(farm: tuple[KernelFarm, ResultStore]) -> Built:
    kernels, store = farm
    return kernels.build(kernels.job(BASELINE_TAG, TINY), store=store)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_tinyconfig_kernel_is_built_stamped_reproducibly_with_its_hashes_recorded(
    farm: tuple[KernelFarm, ResultStore], first: Built
) -> None:
    kernels, _ = farm
    assert first.outcome == BuildOutcome(BuildStatus.PASS)
    image = Path(kbuild.boot_image(str(first.directory), arch="x86_64"))
    assert (first.record.image_hash, first.record.resolved_config_hash) == (
        sha256(image),
        sha256(first.directory / "config"),
    )
    config = (first.directory / "config").read_text().splitlines()
    assert {"CONFIG_64BIT=y", "CONFIG_PRINTK=y"} <= set(config)
    # SWAP=n is met by SWAP's absence: it depends on BLOCK, which tinyconfig leaves off.
    assert not [line for line in config if "CONFIG_SWAP " in line or "CONFIG_SWAP=" in line]
    assert "kbuild: all 4 options of the fragment are in .config" in first.log
    assert ("kbuild: ccache used" in first.log) is CCACHE
    generated = kernels.objdir(TINY)
    # No `+` for an untagged worktree, and the commit's date rather than the build's.
    assert (generated / "include/config/kernel.release").read_text() == "6.1.192\n"
    assert (generated / "include/generated/utsversion.h").read_text() == (
        '#define UTS_VERSION "#1 Sun, 11 Dec 2022 14:15:00 +0000"\n'
    )
    compile_h = (generated / "include/generated/compile.h").read_text()
    assert '"reconciler"' in compile_h.partition("LINUX_COMPILE_BY")[2].splitlines()[0]
    print(f"full build: {len(first.compiled)} CC lines")


def test_the_next_commit_of_the_branch_recompiles_only_what_changed(
    farm: tuple[KernelFarm, ResultStore], first: Built
) -> None:
    kernels, store = farm
    commit = commit_change(
        kernels.repo,
        parent=BASELINE_TAG,
        path="kernel/panic.c",
        text="/* the next commit */\n",
        message="touch panic",
    )
    second = kernels.build(kernels.job(commit, TINY), store=store)
    assert second.outcome == BuildOutcome(BuildStatus.PASS)
    # The changed file, and the version stamps that carry the commit's date.
    assert sorted(second.compiled) == [
        "arch/x86/boot/compressed/misc.o",
        "arch/x86/boot/version.o",
        "init/version-timestamp.o",
        "init/version.o",
        "kernel/panic.o",
    ]
    assert second.record.image_hash not in (None, first.record.image_hash)
    assert second.record.resolved_config_hash == first.record.resolved_config_hash
    # The built-in initramfs carries the new commit's date, as a full build's would: kbuild
    # alone would keep the previous build's (it does not track KBUILD_BUILD_TIMESTAMP).
    cpio = (kernels.objdir(TINY) / "usr/initramfs_data.cpio").read_bytes()
    assert cpio[:6] == b"070701"
    assert int(cpio[46:54], 16) == 1675245600  # 2023-02-01T10:00:00Z, commit_change's date
    print(f"incremental: {len(second.compiled)} CC lines after {len(first.compiled)}")


def test_the_same_commit_built_from_scratch_in_another_lineage_gives_the_same_image(
    farm: tuple[KernelFarm, ResultStore], first: Built
) -> None:
    kernels, store = farm
    # Another profile name: another worktree and object dir. Without ccache, so that every
    # object is compiled again here rather than copied from the first build.
    twin = profile(
        "tiny-twin", base_config="tinyconfig", kconfig=FRAGMENT, build_env={"CCACHE_DISABLE": "1"}
    )
    again = kernels.build(kernels.job(BASELINE_TAG, twin), store=store)
    assert again.job.build != first.job.build
    assert again.outcome == BuildOutcome(BuildStatus.PASS)
    assert len(again.compiled) == len(first.compiled)
    assert (again.record.image_hash, again.record.resolved_config_hash) == (
        first.record.image_hash,
        first.record.resolved_config_hash,
    )


def test_options_the_tree_lacks_or_olddefconfig_drops_fail_the_build_saying_why(
    farm: tuple[KernelFarm, ResultStore], first: Built
) -> None:
    kernels, store = farm
    asks_too_much = profile(
        "tiny", base_config="tinyconfig", kconfig=[*FRAGMENT, "TMPFS=y", "NO_SUCH_OPTION=y"]
    )
    built = kernels.build(kernels.job(BASELINE_TAG, asks_too_much), store=store)
    assert built.outcome == BuildOutcome(
        BuildStatus.FAIL, "the resolved .config is not what the profile asks"
    )
    report = built.log[built.log.index("kbuild: the resolved .config lacks") :].splitlines()
    assert report[1:4] == [
        "  CONFIG_NO_SUCH_OPTION=y: unknown to this tree: no Kconfig file defines NO_SUCH_OPTION"
        " for x86_64 (misspelt, renamed, removed, or only on another architecture);"
        " fix or remove it in the profile's kconfig",
        "  CONFIG_TMPFS=y: olddefconfig left it not set: a dependency is not met, or it has no"
        " prompt and nothing selects it. Defined at fs/Kconfig:164",
        "      `depends on SHMEM` (CONFIG_SHMEM not set)",
    ]
    assert built.compiled == []
    assert not built.directory.exists()


def test_a_compile_error_is_a_fail_verdict_with_the_compiler_output(
    farm: tuple[KernelFarm, ResultStore], first: Built
) -> None:
    kernels, store = farm
    commit = commit_change(
        kernels.repo,
        parent=BASELINE_TAG,
        path="kernel/panic.c",
        text="#error kbuild test\n",
        message="break panic",
    )
    built = kernels.build(kernels.job(commit, TINY), store=store)
    assert built.outcome == BuildOutcome(BuildStatus.FAIL, "make exited 2")
    assert re.search(r"kernel/panic\.c:\d+:\d+: error: #error kbuild test", built.log)
    assert built.log.endswith("kbuild: make exited 2\n")
