"""The in-memory twin of the git seam: `GitSource` over plain dicts.

Unit tests of the resolver's callers and the planning benchmark (10 branches x 50 commits) need
histories without spawning git. The twin hashes blobs, trees and commits exactly as git does, so
identical contents get identical tree hashes (the property identity rests on) and a history built
here has the very commit ids `git commit-tree` gives the same snapshots; the contract tests in
`tests/test_git_memory.py` hold both implementations to the same answers.

A commit is built from a full snapshot of its files (`path -> bytes`) and explicit parents: the
tip of its branch first, then an optional merged commit. Author and committer are `IDENT`, both
at `committed_at`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from reconciler.adapters.git_mirror import refuse_option_like
from reconciler.model.desired import ResolvedCommit
from reconciler.model.errors import GitError, GitUnreachableError
from reconciler.model.specs import Repo

IDENT = "Memory Git <memory-git@example.org>"
REGULAR = "100644"
EXECUTABLE = "100755"
_MIN_ABBREV = 4
_FULL_HEX_LENGTH = 40


def git_object_hash(kind: str, payload: bytes) -> str:
    header = b"%s %d\0" % (kind.encode(), len(payload))
    # SHA-1 because that is git's object format, not for security.
    return hashlib.sha1(header + payload, usedforsecurity=False).hexdigest()


def tree_hash(entries: Mapping[str, tuple[str, str]]) -> str:
    """Hash of the tree holding `path -> (mode, blob)`, subtrees included, as git computes it."""
    here: dict[str, tuple[str, str]] = {}
    below: dict[str, dict[str, tuple[str, str]]] = {}
    for path, entry in entries.items():
        head, _, rest = path.partition("/")
        if rest:
            below.setdefault(head, {})[rest] = entry
        else:
            here[head] = entry
    for name, subtree in below.items():
        here[name] = ("40000", tree_hash(subtree))
    # git orders a subtree as if its name ended in '/'.
    ordered = sorted(here, key=lambda name: name + "/" if name in below else name)
    payload = b"".join(
        f"{here[name][0]} {name}".encode() + b"\0" + bytes.fromhex(here[name][1])
        for name in ordered
    )
    return git_object_hash("tree", payload)


@dataclass(frozen=True)
class _MemoryCommit:
    resolved: ResolvedCommit
    parents: tuple[str, ...]


@dataclass
class _MemoryRepo:
    refs: dict[str, str] = field(default_factory=dict)
    """Full ref name (`refs/heads/main`, `refs/tags/v1`) -> commit id."""
    commits: dict[str, _MemoryCommit] = field(default_factory=dict)
    trees: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    """Tree hash -> path -> (mode, blob)."""
    blobs: dict[str, bytes] = field(default_factory=dict)


class MemoryGit:
    """`GitSource` over in-memory repositories keyed by URL, plus the means to fill them."""

    def __init__(self) -> None:
        self._repos: dict[str, _MemoryRepo] = {}

    def add_repo(self, *, url: str) -> None:
        self._repos.setdefault(url, _MemoryRepo())

    def commit(
        self,
        *,
        url: str,
        branch: str,
        subject: str,
        committed_at: int,
        files: Mapping[str, bytes],
        executable: Collection[str] = (),
        merge: str | None = None,
    ) -> ResolvedCommit:
        """Commit the snapshot `files` on top of `branch` (created if new), merging `merge`."""
        self.add_repo(url=url)
        repo = self._repos[url]
        entries: dict[str, tuple[str, str]] = {}
        for path, content in files.items():
            blob = git_object_hash("blob", content)
            repo.blobs[blob] = content
            entries[path] = (EXECUTABLE if path in executable else REGULAR, blob)
        tree = tree_hash(entries)
        repo.trees[tree] = entries
        tip = repo.refs.get(f"refs/heads/{branch}")
        parents = tuple(parent for parent in (tip, merge) if parent is not None)
        stamp = f"{IDENT} {committed_at} +0000"
        text = (
            f"tree {tree}\n"
            + "".join(f"parent {parent}\n" for parent in parents)
            + f"author {stamp}\ncommitter {stamp}\n\n{subject}\n"
        )
        commit = git_object_hash("commit", text.encode())
        resolved = ResolvedCommit(
            commit=commit, tree=tree, subject=subject, committed_at=committed_at
        )
        repo.commits[commit] = _MemoryCommit(resolved=resolved, parents=parents)
        repo.refs[f"refs/heads/{branch}"] = commit
        return resolved

    def branch(self, *, url: str, name: str, commit: str) -> None:
        """Create or move branch `name` to `commit` (a fork point, a force-push, a rebase)."""
        self._repos[url].refs[f"refs/heads/{name}"] = commit

    def tag(self, *, url: str, name: str, commit: str) -> None:
        """A tag on `commit`; annotated or not makes no difference once peeled."""
        self._repos[url].refs[f"refs/tags/{name}"] = commit

    def branch_commits(
        self, *, repo: Repo, ref: str, max_commits: int, asked_by: str
    ) -> tuple[ResolvedCommit, ...]:
        if max_commits < 1:
            raise ValueError(f"max_commits must be at least 1, not {max_commits}")
        memory = self._repo(repo=repo, asked_by=asked_by)
        candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", ref]
        commit: str | None = self._peel(memory, candidates=candidates, repo=repo, asked_by=asked_by)
        history: list[ResolvedCommit] = []
        while commit is not None and len(history) < max_commits:
            entry = memory.commits[commit]
            history.append(entry.resolved)
            commit = entry.parents[0] if entry.parents else None
        return tuple(history)

    def resolve_commit(self, *, repo: Repo, ref: str, asked_by: str) -> ResolvedCommit:
        memory = self._repo(repo=repo, asked_by=asked_by)
        commit = self._peel(memory, candidates=[ref], repo=repo, asked_by=asked_by)
        return memory.commits[commit].resolved

    def tree_view(self, *, repo: Repo, tree: str) -> MemoryTreeView:
        where = f"Repo {repo.name!r}"
        memory = self._repo(repo=repo, asked_by=where)
        matches = [known for known in memory.trees if known.startswith(tree)]
        if len(tree) < _MIN_ABBREV or len(matches) != 1:
            raise GitError(
                f"tree {tree} is not in repository {repo.url}",
                where=where,
                hint="resolve the tree from a commit of this repository",
            )
        (full,) = matches
        files = {
            path: (mode, memory.blobs[blob]) for path, (mode, blob) in memory.trees[full].items()
        }
        return MemoryTreeView(tree=full, contents=files)

    def _repo(self, *, repo: Repo, asked_by: str) -> _MemoryRepo:
        refuse_option_like(repo.url, what="repository URL", where=asked_by)
        if repo.url not in self._repos:
            raise GitUnreachableError(
                f"repository {repo.url} is not a git repository",
                where=asked_by,
                hint=f"check the URL: git ls-remote -- {shlex.quote(repo.url)}",
            )
        return self._repos[repo.url]

    def _peel(
        self, memory: _MemoryRepo, *, candidates: list[str], repo: Repo, asked_by: str
    ) -> str:
        ref = candidates[-1]
        refuse_option_like(ref, what="ref", where=asked_by)
        for candidate in candidates:
            # git's order: a full commit id, then refs/X, refs/tags/X, refs/heads/X, then an
            # unambiguous abbreviated commit id.
            if len(candidate) == _FULL_HEX_LENGTH and candidate in memory.commits:
                return candidate
            for name in (candidate, f"refs/{candidate}", f"refs/tags/{candidate}"):
                if name.startswith("refs/") and name in memory.refs:
                    return memory.refs[name]
            if f"refs/heads/{candidate}" in memory.refs:
                return memory.refs[f"refs/heads/{candidate}"]
            if len(candidate) >= _MIN_ABBREV:
                matches = [commit for commit in memory.commits if commit.startswith(candidate)]
                if len(matches) == 1:
                    return matches[0]
        raise GitError(
            f"ref {ref!r} does not name a commit in repository {repo.name!r} ({repo.url})",
            where=asked_by,
            hint="check the ref exists:"
            f" git ls-remote -- {shlex.quote(repo.url)} {shlex.quote(ref)}",
        )


class MemoryTreeView:
    """A tree's files held in memory; `export` writes them as git would check them out."""

    def __init__(self, *, tree: str, contents: Mapping[str, tuple[str, bytes]]) -> None:
        self._tree = tree
        self._contents = contents
        self._files = MappingProxyType(
            {path: git_object_hash("blob", content) for path, (_, content) in contents.items()}
        )

    @property
    def tree(self) -> str:
        return self._tree

    def files(self) -> Mapping[str, str]:
        return self._files

    def export(self, dest: Path) -> None:
        for path, (mode, content) in self._contents.items():
            target = dest.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            permissions = 0o777 if mode == EXECUTABLE else 0o666
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            with os.fdopen(os.open(target, flags, permissions), "wb") as out:
                out.write(content)
