"""A farm around the real ktest tree of shared/data/ktest-sample, for tests and the bench.

The sample (ktest commit 30bbfd2: build-test-kernel, lib/, tests/*.sh and 12 bcachefs `.ktest`
files) is imported unmodified as branch `master` of a git repository. Branch `with-cross-conf`
adds the one file the sample omits that its libraries source, ktest's top-level `cross.conf`
(cross-compile triplets; empty here): without it, files that source `tests/prelude.sh` twice
print an ERR-trap line on stdout.

Dependencies, as the sample's `require-git` lines name them: `xfstests` is the real fstests
snapshot of shared/sources; `bcachefs-tools` and `linuxquota` are small stand-ins (a listing
only needs their directories to exist).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.ktest_deps import declared_dependencies, invalid_lines
from tests.shared_data import DATA

SAMPLE = DATA / "ktest-sample"
SOURCES = DATA.parent / "sources"
XFSTESTS_TARBALL = SOURCES / "xfstests-63a29724.tar.gz"
TEST_GLOB = "tests/fs/bcachefs/*.ktest"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
REAL_URLS = {
    "bcachefs-tools": "https://evilpiepirate.org/git/bcachefs-tools.git",
    "xfstests": "http://evilpiepirate.org/git/xfstests.git",
    "linuxquota": "http://evilpiepirate.org/git/linuxquota.git",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def import_tree(source: Path | None, repo: Path, *, files: dict[str, str] | None = None) -> None:
    """A one-commit repository on `master` holding `source` (or just `files`)."""
    if source is not None:
        shutil.copytree(source, repo, symlinks=True)
    else:
        repo.mkdir(parents=True)
    for name, text in (files or {}).items():
        (repo / name).write_text(text)
    git(repo, "init", "-q", "-b", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "import")


@dataclass(frozen=True)
class SampleFarm:
    root: Path
    ktest: Path
    kernel: Path
    deps: dict[str, Path]

    def spec_text(self, *, ref: str = "master", dependencies: dict[str, str] | None = None) -> str:
        """Specs testing the kernel repo's main branch with the sample's bcachefs ktests;
        `dependencies` maps a dependency name to its URL (default: the local repositories)."""
        urls = (
            dependencies if dependencies is not None else {n: str(p) for n, p in self.deps.items()}
        )
        pins = "".join(
            f"\n  - {{name: {name}, url: '{url}', ref: master}}"
            for name, url in sorted(urls.items())
        )
        return f"""\
kind: Repo
name: kernel
url: {self.kernel}
---
kind: Harness
name: ktest
type: ktest
url: {self.ktest}
ref: {ref}
dependencies:{pins or " []"}
---
kind: TestGroup
name: bcachefs
harness: ktest
tests: ["{TEST_GLOB}"]
---
kind: Profile
name: default
---
kind: Branch
name: main
repo: kernel
ref: main
max_commits: 1
test_groups: [bcachefs]
profiles: [default]
"""


def make_farm(root: Path) -> SampleFarm:
    ktest = root / "ktest"
    import_tree(SAMPLE, ktest)
    git(ktest, "checkout", "-q", "-b", "with-cross-conf")
    (ktest / "cross.conf").write_text("# stand-in for ktest's cross.conf, which the sample omits\n")
    git(ktest, "add", "-A")
    git(ktest, "commit", "-q", "-m", "cross.conf")
    git(ktest, "checkout", "-q", "master")

    with tarfile.open(XFSTESTS_TARBALL) as archive:
        archive.extractall(root / "unpacked", filter="data")
    deps = {
        "xfstests": root / "deps" / "xfstests",
        "bcachefs-tools": root / "deps" / "bcachefs-tools",
        "linuxquota": root / "deps" / "linuxquota",
    }
    import_tree(root / "unpacked" / "xfstests", deps["xfstests"])
    shutil.rmtree(root / "unpacked")
    import_tree(None, deps["bcachefs-tools"], files={"README": "bcachefs-tools stand-in\n"})
    import_tree(None, deps["linuxquota"], files={"README": "linuxquota stand-in\n"})

    kernel = root / "kernel"
    import_tree(None, kernel, files={"Makefile": "# a kernel tree stand-in\n"})
    git(kernel, "branch", "-m", "main")
    return SampleFarm(root=root, ktest=ktest, kernel=kernel, deps=deps)


@dataclass(frozen=True)
class HandListing:
    returncode: int
    lines: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return self.returncode == 0 and bool(self.lines) and not invalid_lines(self.lines)


def hand_listings(farm: SampleFarm, *, ref: str, workdir: Path) -> dict[str, HandListing]:
    """Each sample file's `list-tests`, run by hand as a developer would with the dependencies
    checked out: in ktest_deps_dir, and where the tree's older code looks for them."""
    tree = workdir / "tree"
    git(farm.ktest, "worktree", "add", "-q", "--detach", str(tree), ref)
    deps_dir = workdir / "deps"
    deps_dir.mkdir()
    for name, repo in farm.deps.items():
        (deps_dir / name).symlink_to(repo)
    texts = {
        path.relative_to(tree).as_posix(): path.read_text(errors="replace")
        for path in tree.rglob("*")
        if path.is_file() and ".git" not in path.parts
    }
    for requirement in declared_dependencies(texts):
        place = tree / requirement.link_path
        if not place.exists() and place.parent.is_dir():
            place.symlink_to(deps_dir / requirement.name)
    home = workdir / "home"
    home.mkdir()
    listings = {}
    for path in sorted(tree.glob(TEST_GLOB)):
        test = path.relative_to(tree).as_posix()
        done = subprocess.run(
            [f"./{test}", "list-tests"],
            cwd=tree,
            env={"PATH": os.environ["PATH"], "HOME": str(home), "ktest_deps_dir": str(deps_dir)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = tuple(line.strip() for line in done.stdout.splitlines() if line.strip())
        listings[test] = HandListing(done.returncode, lines)
    git(farm.ktest, "worktree", "remove", "--force", str(tree))
    return listings
