"""ktest's `require-git` dependencies, provisioned by the reconciler instead of cloned by ktest.

Left alone, every `.ktest` file's `list-tests` runs `git clone` for each missing dependency into
`~/.ktest/deps` of whoever runs it, with the network, during planning; and what it cloned (some
branch, some day) is in no identity. Here each dependency is a pinned input of the Harness spec
(`dependencies:`), resolved to a commit through the same git mirrors as every repository, and
its tree exported once per tree under the store (`<store>/cache/trees/<tree>`). A listing gets a
private `ktest_deps_dir` holding a link to each export (and an empty directory for each
dependency that did not resolve or that no spec pins, so ktest never clones), and the ktest
checkout gets a link at the place older ktest code still looks (`RequireGit.link_path`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from reconciler.core.ktest_deps import RequireGit
from reconciler.model.desired import ResolvedDependency
from reconciler.model.specs import Harness, HarnessDependency, Repo

TEXT_LIMIT = 1 << 20
"""Files larger than this are not scanned for `require-git` lines (no ktest library is)."""


def dependency_repo(harness: Harness, dependency: HarnessDependency | ResolvedDependency) -> Repo:
    """The Repo a dependency is read through: one mirror per (harness, dependency, url)."""
    return Repo(kind="Repo", name=f"{harness.name}.{dependency.name}", url=dependency.url)


class TreeExporter(Protocol):
    def export_tree(self, *, repo: Repo, tree: str, dest: Path) -> None:
        """Write the files of `tree` of `repo` into the empty directory `dest`."""


class DependencyTrees:
    """A harness's resolved dependencies and their files on this host, exported on first use."""

    def __init__(
        self,
        *,
        harness: Harness,
        resolved: Iterable[ResolvedDependency],
        root: Path,
        exporter: TreeExporter,
    ) -> None:
        self.harness = harness
        self.by_name: Mapping[str, ResolvedDependency] = {dep.name: dep for dep in resolved}
        self._root = root
        self._exporter = exporter

    def revisions(self) -> dict[str, str]:
        """name -> tree, or why it has none: part of every listing's cache key."""
        return {
            name: dep.tree if dep.tree is not None else f"unresolved: {dep.ref}"
            for name, dep in sorted(self.by_name.items())
        }

    def directory(self, dependency: ResolvedDependency) -> Path:
        """The exported tree of a resolved dependency (made once, atomically)."""
        if dependency.tree is None:
            raise ValueError(f"dependency {dependency.name!r} did not resolve")
        target = self._root / dependency.tree
        if target.is_dir():
            return target
        self._root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dependency.tree}.", dir=self._root))
        try:
            self._exporter.export_tree(
                repo=dependency_repo(self.harness, dependency), tree=dependency.tree, dest=staging
            )
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # another reconciler exported it meanwhile: keep theirs
                    raise
                shutil.rmtree(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def provision(self, *, deps_dir: Path, checkout: Path, declared: Iterable[RequireGit]) -> None:
        """Fill `deps_dir` for a listing, and link declared dependencies into `checkout`.

        Every name ktest might `require-git` gets a directory, so it never clones: the export
        for a resolved dependency, an empty one otherwise (files that use those are blocked).
        """
        declared = list(declared)
        for dep in self.by_name.values():
            _link(deps_dir / dep.name, self.directory(dep) if dep.tree is not None else None)
        for requirement in declared:
            if not (deps_dir / requirement.name).exists():
                _link(deps_dir / requirement.name, None)
        for requirement in declared:
            place = checkout / requirement.link_path
            # Only inside the checkout, only where the tree has nothing, only beside a directory
            # the tree has: the link serves code that looks there, it never reshapes the tree.
            if not place.resolve().is_relative_to(checkout.resolve()):
                continue
            if place.exists() or place.is_symlink() or not place.parent.is_dir():
                continue
            place.symlink_to(deps_dir / requirement.name, target_is_directory=True)


def _link(place: Path, target: Path | None) -> None:
    if place.exists() or place.is_symlink():
        return
    if target is None:
        place.mkdir(parents=True)
    else:
        place.symlink_to(target, target_is_directory=True)


def read_texts(checkout: Path) -> dict[str, str]:
    """Every small UTF-8 file of an exported tree, by its path relative to the tree."""
    texts: dict[str, str] = {}
    for path in sorted(checkout.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if path.stat().st_size <= TEXT_LIMIT:
                texts[path.relative_to(checkout).as_posix()] = path.read_text(encoding="utf-8")
    return texts
