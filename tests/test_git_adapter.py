"""The real git adapter against real repositories made in tmp_path, with real git processes."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.adapters.git import GitResolver
from reconciler.model.desired import ResolvedCommit
from reconciler.model.errors import GitError, GitUnreachableError
from reconciler.model.specs import Repo

ASKED_BY = "specs/a.yaml:12:1: Branch 'main'"


def git(cwd: Path, *args: str, when: int = 1_700_000_000) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
        "GIT_AUTHOR_DATE": f"@{when} +0000",
        "GIT_COMMITTER_DATE": f"@{when} +0000",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_file(work: Path, *, path: str, text: str, subject: str, when: int) -> str:
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", subject, when=when)
    return git(work, "rev-parse", "HEAD")


def expected(work: Path, commit: str) -> ResolvedCommit:
    return ResolvedCommit(
        commit=commit,
        tree=git(work, "rev-parse", f"{commit}^{{tree}}"),
        subject=git(work, "log", "-1", "--format=%s", commit),
        committed_at=int(git(work, "log", "-1", "--format=%ct", commit)),
    )


@dataclass(frozen=True)
class GitHistory:
    work: Path
    commits: dict[str, str]

    def repo(self, url: str | None = None) -> Repo:
        return Repo(kind="Repo", name="linux", url=url or str(self.work))


@pytest.fixture
def git_history(tmp_path: Path) -> GitHistory:
    """main: c1 - c2 - c3 - merge(side) - c5 - c6 (reverts c5); side: s1 off c2; tags on c2, c3."""
    work = tmp_path / "origin"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "run.sh").write_text("#!/bin/sh\necho run\n")
    (work / "run.sh").chmod(0o755)
    (work / "link").symlink_to("README")
    commits = {"c1": commit_file(work, path="README", text="v1\n", subject="initial", when=1000)}
    commits["c2"] = commit_file(work, path="dir/a.txt", text="a\n", subject="change a", when=2000)
    git(work, "checkout", "-q", "-b", "side")
    commits["s1"] = commit_file(work, path="side.txt", text="s\n", subject="side work", when=2500)
    git(work, "checkout", "-q", "main")
    commits["c3"] = commit_file(work, path="README", text="v3\n", subject="readme", when=3000)
    git(work, "merge", "-q", "--no-ff", "-m", "Merge branch 'side'", "side", when=4000)
    commits["merge"] = git(work, "rev-parse", "HEAD")
    commits["c5"] = commit_file(work, path="README", text="tmp\n", subject="temp", when=5000)
    commits["c6"] = commit_file(work, path="README", text="v3\n", subject="Revert temp", when=6000)
    git(work, "tag", "v1-light", commits["c2"])
    git(work, "tag", "-a", "-m", "release 1.0", "v1.0", commits["c3"], when=3500)
    return GitHistory(work=work, commits=commits)


@pytest.fixture
def git_bare_remote(git_history: GitHistory, tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(git_history.work), str(remote))
    return remote


def test_branch_commits_are_first_parent_newest_first(
    git_history: GitHistory, tmp_path: Path
) -> None:
    resolver = GitResolver(tmp_path / "cache")
    commits = resolver.branch_commits(
        repo=git_history.repo(), ref="main", max_commits=50, asked_by=ASKED_BY
    )
    order = ["c6", "c5", "merge", "c3", "c2", "c1"]
    assert commits == tuple(expected(git_history.work, git_history.commits[n]) for n in order)
    assert [c.subject for c in commits] == [
        "Revert temp",
        "temp",
        "Merge branch 'side'",
        "readme",
        "change a",
        "initial",
    ]
    assert [c.committed_at for c in commits] == [6000, 5000, 4000, 3000, 2000, 1000]
    assert git_history.commits["s1"] not in {c.commit for c in commits}


def test_branch_commits_respects_max_commits(git_history: GitHistory, tmp_path: Path) -> None:
    resolver = GitResolver(tmp_path / "cache")
    commits = resolver.branch_commits(
        repo=git_history.repo(), ref="refs/heads/main", max_commits=3, asked_by=ASKED_BY
    )
    assert [c.commit for c in commits] == [git_history.commits[n] for n in ("c6", "c5", "merge")]


def test_identical_trees_have_equal_hashes(git_history: GitHistory, tmp_path: Path) -> None:
    resolver = GitResolver(tmp_path / "cache")
    revert, temp, merge = resolver.branch_commits(
        repo=git_history.repo(), ref="main", max_commits=3, asked_by=ASKED_BY
    )
    assert revert.tree == merge.tree
    assert revert.commit != merge.commit
    assert temp.tree != merge.tree


def test_branch_prefers_a_branch_over_a_tag_of_the_same_name(
    git_history: GitHistory, tmp_path: Path
) -> None:
    git(git_history.work, "tag", "main", git_history.commits["c1"])
    resolver = GitResolver(tmp_path / "cache")
    (newest,) = resolver.branch_commits(
        repo=git_history.repo(), ref="main", max_commits=1, asked_by=ASKED_BY
    )
    assert newest.commit == git_history.commits["c6"]


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("v1.0", "c3"),
        ("refs/tags/v1.0", "c3"),
        ("v1-light", "c2"),
        ("main", "c6"),
        ("side", "s1"),
        ("full:c1", "c1"),
        ("short:c1", "c1"),
    ],
)
def test_resolve_commit(git_history: GitHistory, tmp_path: Path, ref: str, name: str) -> None:
    commit = git_history.commits[name]
    if ref.startswith("full:"):
        ref = commit
    elif ref.startswith("short:"):
        ref = commit[:9]
    resolver = GitResolver(tmp_path / "cache")
    resolved = resolver.resolve_commit(repo=git_history.repo(), ref=ref, asked_by=ASKED_BY)
    assert resolved == expected(git_history.work, commit)


@pytest.mark.parametrize("method", ["branch_commits", "resolve_commit"])
def test_unknown_ref_is_a_user_error_naming_spec_and_ref(
    git_history: GitHistory, tmp_path: Path, method: str
) -> None:
    resolver = GitResolver(tmp_path / "cache")
    with pytest.raises(GitError) as caught:
        if method == "branch_commits":
            resolver.branch_commits(
                repo=git_history.repo(), ref="no-such-branch", max_commits=5, asked_by=ASKED_BY
            )
        else:
            resolver.resolve_commit(
                repo=git_history.repo(), ref="no-such-branch", asked_by=ASKED_BY
            )
    message = str(caught.value)
    assert message.startswith(f"{ASKED_BY}: ref 'no-such-branch' does not name a commit")
    assert "'linux'" in message
    assert (
        f"hint: check the ref exists: git ls-remote -- {git_history.work} no-such-branch" in message
    )
    assert not isinstance(caught.value, GitUnreachableError)


@pytest.mark.parametrize("where", ["missing", "plain", "inside-a-checkout"])
def test_a_path_that_is_not_a_repository_is_unreachable(
    git_history: GitHistory, tmp_path: Path, where: str
) -> None:
    path = {
        "missing": tmp_path / "nowhere",
        "plain": tmp_path / "plain",
        # A subdirectory of a checkout must not be read as the enclosing repository.
        "inside-a-checkout": git_history.work / "dir",
    }[where]
    if where == "plain":
        path.mkdir()
    resolver = GitResolver(tmp_path / "cache")
    with pytest.raises(GitUnreachableError) as caught:
        resolver.resolve_commit(repo=git_history.repo(str(path)), ref="main", asked_by=ASKED_BY)
    assert str(caught.value).startswith(f"{ASKED_BY}: repository {path} is not a")


def test_unreachable_file_url_leaves_no_partial_mirror(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    url = f"file://{tmp_path}/no-such-remote.git"
    resolver = GitResolver(cache)
    with pytest.raises(GitUnreachableError) as caught:
        resolver.resolve_commit(
            repo=Repo(kind="Repo", name="gone", url=url), ref="main", asked_by=ASKED_BY
        )
    assert str(caught.value).startswith(f"{ASKED_BY}: cannot fetch {url}: ")
    assert caught.value.hint == f"check the URL and the network: git ls-remote -- {url}"
    assert list(cache.iterdir()) == []


def test_an_unreachable_remote_is_tried_once_per_resolver(
    git_history: GitHistory, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/late.git"
    repo = Repo(kind="Repo", name="late", url=url)
    resolver = GitResolver(tmp_path / "cache")
    with pytest.raises(GitUnreachableError):
        resolver.resolve_commit(repo=repo, ref="main", asked_by="specs/a.yaml:1:1: Branch 'x'")
    # The remote appears; this pass already knows it failed and does not try again, but each
    # spec asking still gets the error at its own location.
    git(tmp_path, "clone", "-q", "--bare", str(git_history.work), str(tmp_path / "late.git"))
    with pytest.raises(GitUnreachableError) as again:
        resolver.branch_commits(
            repo=repo, ref="main", max_commits=1, asked_by="specs/a.yaml:9:1: Baseline 'y'"
        )
    assert str(again.value).startswith(f"specs/a.yaml:9:1: Baseline 'y': cannot fetch {url}: ")
    # The next pass (a new resolver) tries again and succeeds.
    fresh = GitResolver(tmp_path / "cache")
    assert (
        fresh.resolve_commit(repo=repo, ref="main", asked_by="x").commit
        == (git_history.commits["c6"])
    )


def test_credentials_in_a_url_are_never_shown(tmp_path: Path) -> None:
    url = "https://builder:s3cret-token@127.0.0.1:1/linux.git"
    resolver = GitResolver(tmp_path / "cache", timeout=30)
    with pytest.raises(GitUnreachableError) as caught:
        resolver.resolve_commit(
            repo=Repo(kind="Repo", name="x", url=url), ref="main", asked_by=ASKED_BY
        )
    assert "s3cret" not in str(caught.value)
    assert "https://***@127.0.0.1:1/linux.git" in str(caught.value)


def test_fetch_disabled_without_a_mirror_is_unreachable(
    git_bare_remote: Path, tmp_path: Path
) -> None:
    resolver = GitResolver(tmp_path / "cache", fetch=False)
    repo = Repo(kind="Repo", name="linux", url=f"file://{git_bare_remote}")
    with pytest.raises(GitUnreachableError) as caught:
        resolver.resolve_commit(repo=repo, ref="main", asked_by=ASKED_BY)
    assert str(caught.value).startswith(
        f"{ASKED_BY}: no local mirror of file://{git_bare_remote} and fetching is disabled"
    )
    assert caught.value.hint is not None and "git clone --mirror" in caught.value.hint


def test_mirror_is_reused_and_fetched_once_per_resolver(
    git_history: GitHistory, git_bare_remote: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = Repo(kind="Repo", name="linux", url=f"file://{git_bare_remote}")
    first = GitResolver(cache)
    assert (
        first.resolve_commit(repo=repo, ref="main", asked_by=ASKED_BY).commit
        == (git_history.commits["c6"])
    )
    (mirror,) = cache.iterdir()

    newer = commit_file(git_history.work, path="new.txt", text="n\n", subject="new", when=7000)
    git(git_history.work, "push", "-q", str(git_bare_remote), "main")

    # The same resolver does not fetch twice: it still sees the old tip.
    commits = first.branch_commits(repo=repo, ref="main", max_commits=2, asked_by=ASKED_BY)
    assert commits[0].commit == git_history.commits["c6"]
    # A new resolver fetches once, into the same mirror.
    commits = GitResolver(cache).branch_commits(
        repo=repo, ref="main", max_commits=2, asked_by=ASKED_BY
    )
    assert [c.commit for c in commits] == [newer, git_history.commits["c6"]]
    assert list(cache.iterdir()) == [mirror]

    # Without fetching, the mirror alone answers, even with the remote gone.
    git(tmp_path, "clone", "-q", "--bare", str(git_bare_remote), str(tmp_path / "moved.git"))
    for path in sorted(git_bare_remote.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    offline = GitResolver(cache, fetch=False)
    assert (
        offline.resolve_commit(repo=repo, ref="v1.0", asked_by=ASKED_BY).commit
        == (git_history.commits["c3"])
    )
    # With fetching, a remote that went away is an infrastructure error, not stale data.
    with pytest.raises(GitUnreachableError):
        GitResolver(cache).resolve_commit(repo=repo, ref="main", asked_by=ASKED_BY)


def test_option_like_refs_and_urls_never_reach_git(
    git_history: GitHistory, git_bare_remote: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    resolver = GitResolver(tmp_path / "cache")
    remote = Repo(kind="Repo", name="linux", url=f"file://{git_bare_remote}")
    for repo in (git_history.repo(), remote):
        with pytest.raises(GitError, match="starts with '-'"):
            resolver.resolve_commit(
                repo=repo, ref=f"--upload-pack=touch {marker}", asked_by=ASKED_BY
            )
        with pytest.raises(GitError, match="starts with '-'"):
            resolver.branch_commits(
                repo=repo, ref=f"--output={marker}", max_commits=1, asked_by=ASKED_BY
            )
        with pytest.raises(GitError, match="does not name a commit"):
            resolver.resolve_commit(
                repo=repo, ref=f"x --upload-pack=touch {marker}", asked_by=ASKED_BY
            )
    # The model refuses such a URL; the adapter refuses it too, for one that bypassed the model.
    with pytest.raises(ValueError, match="starts with '-'"):
        Repo(kind="Repo", name="evil", url=f"--upload-pack=touch {marker}")
    evil = Repo.model_construct(kind="Repo", name="evil", url=f"--upload-pack=touch {marker}")
    with pytest.raises(GitError, match="starts with '-'"):
        resolver.resolve_commit(repo=evil, ref="main", asked_by=ASKED_BY)
    assert not marker.exists()


def test_a_hanging_transport_times_out_and_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSH_COMMAND", "sleep 60; true")
    resolver = GitResolver(tmp_path / "cache", timeout=1)
    repo = Repo(kind="Repo", name="slow", url="ssh://git.example.invalid/linux.git")
    start = time.monotonic()
    with pytest.raises(GitUnreachableError) as caught:
        resolver.resolve_commit(repo=repo, ref="main", asked_by=ASKED_BY)
    assert time.monotonic() - start < 20
    assert str(caught.value).startswith(
        f"{ASKED_BY}: cannot read ssh://git.example.invalid/linux.git: "
        "git fetch timed out after 1 s"
    )
    assert list((tmp_path / "cache").iterdir()) == []


def test_tree_view_lists_and_exports_the_tree(git_history: GitHistory, tmp_path: Path) -> None:
    work = git_history.work
    tree = git(work, "rev-parse", "main^{tree}")
    resolver = GitResolver(tmp_path / "cache")
    view = resolver.tree_view(repo=git_history.repo(), tree=tree)
    assert view.tree == tree
    paths = ["README", "dir/a.txt", "link", "run.sh", "side.txt"]
    assert dict(view.files()) == {p: git(work, "rev-parse", f"main:{p}") for p in paths}
    assert view.files() is view.files()

    dest = tmp_path / "export"
    dest.mkdir()
    view.export(dest)
    exported = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir())
    assert exported == paths
    for path in ["README", "dir/a.txt", "run.sh", "side.txt"]:
        shown = subprocess.run(
            ["git", "-C", str(work), "show", f"main:{path}"], capture_output=True, check=True
        ).stdout
        assert (dest / path).read_bytes() == shown
    assert os.readlink(dest / "link") == "README"
    assert (dest / "run.sh").stat().st_mode & stat.S_IXUSR
    assert not (dest / "README").stat().st_mode & stat.S_IXUSR


def test_tree_view_of_a_commit_is_its_tree_and_unknown_trees_are_refused(
    git_history: GitHistory, tmp_path: Path
) -> None:
    resolver = GitResolver(tmp_path / "cache")
    commit = git_history.commits["c2"]
    view = resolver.tree_view(repo=git_history.repo(), tree=commit)
    assert view.tree == git(git_history.work, "rev-parse", f"{commit}^{{tree}}")
    with pytest.raises(GitError, match="tree 0123456789abcdef is not in repository"):
        resolver.tree_view(repo=git_history.repo(), tree="0123456789abcdef")
    with pytest.raises(GitError, match="is not a tree hash"):
        resolver.tree_view(repo=git_history.repo(), tree="--output=x")


@pytest.mark.parametrize("name", ["..", ".git", ".GIT"])
def test_export_refuses_a_tree_with_unsafe_paths(
    git_history: GitHistory, tmp_path: Path, name: str
) -> None:
    work = git_history.work
    blob = (
        subprocess.run(
            ["git", "-C", str(work), "hash-object", "-w", "--stdin"],
            input=b"#!/bin/sh\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    inner = (
        subprocess.run(
            ["git", "-C", str(work), "mktree"],
            input=f"100755 blob {blob}\tevil\n".encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    # `git mktree` does not check names (fsck would), so a hostile tree is easy to make.
    hostile = (
        subprocess.run(
            ["git", "-C", str(work), "mktree"],
            input=f"100644 blob {blob}\tfine\n040000 tree {inner}\t{name}\n".encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    view = GitResolver(tmp_path / "cache").tree_view(repo=git_history.repo(), tree=hostile)
    assert dict(view.files()) == {"fine": blob, f"{name}/evil": blob}
    dest = tmp_path / "export"
    dest.mkdir()
    with pytest.raises(GitError, match=f"unsafe path '{re.escape(name)}/evil'"):
        view.export(dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()
