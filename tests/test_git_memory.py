"""The in-memory git twin keeps the real adapter's contract, down to the hashes.

One history of full snapshots is built twice: with git plumbing in a real repository, and in
`MemoryGit`. Every contract test runs against both `GitSource`s, and one test checks that they
give equal answers, commit and tree ids included.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Protocol

import pytest

from reconciler.adapters.git import GitResolver, GitSource
from reconciler.adapters.git_memory import IDENT, MemoryGit
from reconciler.model.desired import ResolvedCommit
from reconciler.model.errors import GitError, GitUnreachableError
from reconciler.model.specs import Repo

ASKED_BY = "specs/b.yaml:3:1: Baseline 'v1'"


class HistoryBuilder(Protocol):
    repo: Repo
    source: GitSource

    def commit(
        self,
        *,
        branch: str,
        subject: str,
        committed_at: int,
        files: Mapping[str, bytes],
        executable: Collection[str] = (),
        merge: str | None = None,
    ) -> str: ...

    def branch(self, *, name: str, commit: str) -> None: ...

    def tag(self, *, name: str, commit: str) -> None: ...


class RealHistory:
    """Builds each commit from its snapshot with plumbing, so parents are exactly as given."""

    def __init__(self, root: Path) -> None:
        self._git_dir = root / "real.git"
        self._git("init", "-q", "--bare", str(self._git_dir))
        self.repo = Repo(kind="Repo", name="linux", url=str(self._git_dir))
        self.source: GitSource = GitResolver(root / "cache")

    def _git(self, *args: str, stdin: bytes = b"", when: int = 0) -> str:
        name, email = IDENT[: IDENT.index(" <")], IDENT[IDENT.index("<") + 1 : -1]
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_DIR": str(self._git_dir),
            "GIT_INDEX_FILE": str(self._git_dir / "snapshot-index"),
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_AUTHOR_DATE": f"@{when} +0000",
            "GIT_COMMITTER_DATE": f"@{when} +0000",
        }
        return (
            subprocess.run(["git", *args], input=stdin, env=env, check=True, capture_output=True)
            .stdout.decode()
            .strip()
        )

    def commit(
        self,
        *,
        branch: str,
        subject: str,
        committed_at: int,
        files: Mapping[str, bytes],
        executable: Collection[str] = (),
        merge: str | None = None,
    ) -> str:
        self._git("read-tree", "--empty")
        for path, content in files.items():
            blob = self._git("hash-object", "-w", "--stdin", stdin=content)
            mode = "100755" if path in executable else "100644"
            self._git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}")
        tree = self._git("write-tree")
        tip = subprocess.run(
            [
                "git",
                f"--git-dir={self._git_dir}",
                "rev-parse",
                "--verify",
                "--quiet",
                f"refs/heads/{branch}",
            ],
            capture_output=True,
        ).stdout.decode()
        parents = [p for p in (tip.strip(), merge) if p]
        args = [arg for parent in parents for arg in ("-p", parent)]
        commit = self._git("commit-tree", tree, *args, "-m", subject, when=committed_at)
        self.branch(name=branch, commit=commit)
        return commit

    def branch(self, *, name: str, commit: str) -> None:
        self._git("update-ref", f"refs/heads/{name}", commit)

    def tag(self, *, name: str, commit: str) -> None:
        self._git("tag", "-a", "-m", f"tag {name}", name, commit, when=1)


class MemoryHistory:
    def __init__(self) -> None:
        self.memory = MemoryGit()
        self.repo = Repo(kind="Repo", name="linux", url="https://example.org/linux.git")
        self.source: GitSource = self.memory

    def commit(
        self,
        *,
        branch: str,
        subject: str,
        committed_at: int,
        files: Mapping[str, bytes],
        executable: Collection[str] = (),
        merge: str | None = None,
    ) -> str:
        return self.memory.commit(
            url=self.repo.url,
            branch=branch,
            subject=subject,
            committed_at=committed_at,
            files=files,
            executable=executable,
            merge=merge,
        ).commit

    def branch(self, *, name: str, commit: str) -> None:
        self.memory.branch(url=self.repo.url, name=name, commit=commit)

    def tag(self, *, name: str, commit: str) -> None:
        self.memory.tag(url=self.repo.url, name=name, commit=commit)


BASE = {"README": b"hello\n", "tools/run.sh": b"#!/bin/sh\necho run\n"}
WITH_A = {**BASE, "fs/a.c": b"int a;\n"}


def build_history(builder: HistoryBuilder) -> dict[str, str]:
    """main: m1 - m2 - m3 - merge(feature) - m5 (tree of m2 again); feature: f1 off m2."""
    run = ["tools/run.sh"]
    ids = {
        "m1": builder.commit(
            branch="main", subject="m1", committed_at=100, files=BASE, executable=run
        )
    }
    ids["m2"] = builder.commit(
        branch="main", subject="add a", committed_at=200, files=WITH_A, executable=run
    )
    builder.branch(name="feature", commit=ids["m2"])
    feature_files = {**WITH_A, "fs/b.c": b"int b;\n"}
    ids["f1"] = builder.commit(
        branch="feature", subject="add b", committed_at=250, files=feature_files, executable=run
    )
    main_files = {**WITH_A, "README": b"hello again\n"}
    ids["m3"] = builder.commit(
        branch="main", subject="readme", committed_at=300, files=main_files, executable=run
    )
    ids["merge"] = builder.commit(
        branch="main",
        subject="Merge branch 'feature'",
        committed_at=400,
        files={**main_files, "fs/b.c": b"int b;\n"},
        executable=run,
        merge=ids["f1"],
    )
    ids["m5"] = builder.commit(
        branch="main", subject="back to m2", committed_at=500, files=WITH_A, executable=run
    )
    builder.tag(name="v1", commit=ids["m2"])
    return ids


@pytest.fixture(params=["real", "memory"])
def git_built(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[HistoryBuilder, dict[str, str]]:
    builder: HistoryBuilder = RealHistory(tmp_path) if request.param == "real" else MemoryHistory()
    return builder, build_history(builder)


def test_branch_commits_contract(git_built: tuple[HistoryBuilder, dict[str, str]]) -> None:
    builder, ids = git_built
    commits = builder.source.branch_commits(
        repo=builder.repo, ref="main", max_commits=10, asked_by=ASKED_BY
    )
    assert [c.commit for c in commits] == [ids[n] for n in ("m5", "merge", "m3", "m2", "m1")]
    assert [c.subject for c in commits] == [
        "back to m2",
        "Merge branch 'feature'",
        "readme",
        "add a",
        "m1",
    ]
    assert [c.committed_at for c in commits] == [500, 400, 300, 200, 100]
    assert commits[0].tree == commits[3].tree
    assert len({c.tree for c in commits}) == 4
    limited = builder.source.branch_commits(
        repo=builder.repo, ref="main", max_commits=2, asked_by=ASKED_BY
    )
    assert limited == commits[:2]


@pytest.mark.parametrize(
    ("ref", "name"), [("v1", "m2"), ("feature", "f1"), ("main", "m5"), ("refs/tags/v1", "m2")]
)
def test_resolve_commit_contract(
    git_built: tuple[HistoryBuilder, dict[str, str]], ref: str, name: str
) -> None:
    builder, ids = git_built
    resolved = builder.source.resolve_commit(repo=builder.repo, ref=ref, asked_by=ASKED_BY)
    assert resolved.commit == ids[name]
    for by_id in (ids[name], ids[name][:10]):
        assert builder.source.resolve_commit(repo=builder.repo, ref=by_id, asked_by=ASKED_BY) == (
            resolved
        )


@pytest.mark.parametrize("ref", ["nope", "-x", "--upload-pack=touch /tmp/x"])
def test_bad_refs_are_user_errors_naming_the_spec(
    git_built: tuple[HistoryBuilder, dict[str, str]], ref: str
) -> None:
    builder, _ = git_built
    with pytest.raises(GitError) as caught:
        builder.source.resolve_commit(repo=builder.repo, ref=ref, asked_by=ASKED_BY)
    assert str(caught.value).startswith(f"{ASKED_BY}: ")
    assert repr(ref) in str(caught.value)


def test_tree_view_contract(
    git_built: tuple[HistoryBuilder, dict[str, str]], tmp_path: Path
) -> None:
    builder, _ = git_built
    (newest,) = builder.source.branch_commits(
        repo=builder.repo, ref="feature", max_commits=1, asked_by=ASKED_BY
    )
    view = builder.source.tree_view(repo=builder.repo, tree=newest.tree)
    assert view.tree == newest.tree
    assert sorted(view.files()) == ["README", "fs/a.c", "fs/b.c", "tools/run.sh"]
    dest = tmp_path / "export"
    dest.mkdir()
    view.export(dest)
    assert (dest / "fs/b.c").read_bytes() == b"int b;\n"
    assert (dest / "tools/run.sh").stat().st_mode & stat.S_IXUSR
    assert not (dest / "README").stat().st_mode & stat.S_IXUSR
    with pytest.raises(GitError):
        builder.source.tree_view(repo=builder.repo, tree="0" * 40)


def test_twin_gives_the_same_answers_as_git(tmp_path: Path) -> None:
    real, memory = RealHistory(tmp_path), MemoryHistory()
    assert build_history(real) == build_history(memory)

    def answers(builder: HistoryBuilder) -> tuple[object, ...]:
        source, repo = builder.source, builder.repo
        branch = source.branch_commits(repo=repo, ref="main", max_commits=10, asked_by=ASKED_BY)
        tag = source.resolve_commit(repo=repo, ref="v1", asked_by=ASKED_BY)
        files = dict(source.tree_view(repo=repo, tree=branch[1].tree).files())
        return branch, tag, files

    assert answers(real) == answers(memory)


def test_twin_unknown_repository_is_unreachable() -> None:
    twin = MemoryGit()
    repo = Repo(kind="Repo", name="gone", url="https://example.org/gone.git")
    with pytest.raises(GitUnreachableError, match=r"^specs/b.yaml:3:1: Baseline 'v1': "):
        twin.resolve_commit(repo=repo, ref="main", asked_by=ASKED_BY)


def test_twin_simulates_ten_branches_of_fifty_commits_cheaply() -> None:
    twin = MemoryGit()
    url = "https://example.org/linux.git"
    tips: dict[str, ResolvedCommit] = {}
    for number in range(50):
        for branch in range(10):
            tips[f"b{branch}"] = twin.commit(
                url=url,
                branch=f"b{branch}",
                subject=f"b{branch} commit {number}",
                committed_at=1_000 + number,
                files={"Makefile": b"all:\n", "fs/x.c": f"{branch}:{number}\n".encode()},
            )
    repo = Repo(kind="Repo", name="linux", url=url)
    history = twin.branch_commits(repo=repo, ref="b3", max_commits=50, asked_by=ASKED_BY)
    assert len(history) == 50
    assert history[0] == tips["b3"]
    assert history[-1].subject == "b3 commit 0"
