"""The spec directory as it was at a git revision of the spec repo, loaded as a SpecSet.

`plan --base REV --head REV` compares what two revisions of the specs ask for, so each revision
must be loaded exactly as a checkout of it would be, without touching the user's checkout, its
index or its working tree. The spec directory's tree at REV is exported (blob bytes, through the
git adapter's `GitTreeView`, so no `.gitattributes` filter changes them) into a temporary
directory that exists only while the SpecSet is in use.

Relative paths in specs are written relative to the spec file, and the loader anchors them at the
file's directory, which is now inside the temporary directory. They are mapped back like this:

- the temporary root stands for the checkout's top level, and sits as many directories deep
  inside the temporary directory as the checkout is deep in the file system, so a path that
  climbs out of the repository (`../../shared/ktest`) still lands inside the temporary
  directory and can be mapped back without ambiguity: an absolute path written in a spec never
  points into a fresh temporary directory, so it is never rewritten;
- Repo and Harness urls name git repositories, which a spec repo cannot hold as content: they
  are mapped to the same place relative to the real checkout (`../examples/quickstart/repo`
  from `specs/` reads the repository beside the checkout's `specs/`, whichever REV);
- expunge lists are content: inside the spec directory they were exported with it; elsewhere in
  the repository they are read from REV too; outside the repository they are read from disk.

Locations are rewritten to `REV:path/in/repo:LINE:COLUMN`, so errors name the revision and the
file as the reviewer sees them in the pull request.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.adapters.git_mirror import GitOutput, GitProcessError, refuse_option_like, run_git
from reconciler.adapters.git_tree import GitTreeView
from reconciler.adapters.spec_loader import load_specs
from reconciler.model.errors import GitError, GitUnreachableError, SpecError, SpecErrors, UserError
from reconciler.model.specs import Harness, Repo, TestGroup
from reconciler.model.specset import SourceLocation, SpecSet

GIT_TIMEOUT = 120.0


@dataclass(frozen=True)
class SpecRepository:
    """Where a spec directory lives in its git repository."""

    toplevel: Path
    git_dir: Path
    prefix: str
    """The spec directory inside the repository, `/`-separated; empty at the top level."""


def _git(args: list[str], *, where: str, timeout: float) -> GitOutput:
    try:
        return run_git(args, timeout=timeout)
    except GitProcessError as exc:
        raise GitUnreachableError(f"cannot read the spec repository: {exc}", where=where) from exc


def spec_repository(spec_dir: Path, *, timeout: float = GIT_TIMEOUT) -> SpecRepository:
    where = str(spec_dir)
    if not spec_dir.is_dir():
        raise UserError(
            f"spec directory '{spec_dir}' does not exist",
            hint="pass the spec directory of a checkout of the spec repo (--specs)",
        )
    output = _git(
        [
            "-C",
            str(spec_dir),
            "rev-parse",
            "--show-toplevel",
            "--absolute-git-dir",
            "--show-prefix",
        ],
        where=where,
        timeout=timeout,
    )
    lines = output.stdout.decode().split("\n")
    if output.returncode != 0 or len(lines) < 3:
        raise UserError(
            f"spec directory '{spec_dir}' is not inside a git repository: {output.error_text()}",
            hint="--base/--head name revisions of the spec repo; run from a clone of it",
        )
    return SpecRepository(
        toplevel=Path(lines[0]), git_dir=Path(lines[1]), prefix=lines[2].strip("/")
    )


def _rev_parse(repo: SpecRepository, name: str, *, timeout: float) -> str | None:
    output = _git(
        [f"--git-dir={repo.git_dir}", "rev-parse", "--verify", "--quiet", "--end-of-options", name],
        where=str(repo.toplevel),
        timeout=timeout,
    )
    return output.stdout.decode().strip() if output.returncode == 0 else None


def _object_type(repo: SpecRepository, name: str, *, timeout: float) -> str:
    output = _git(
        [f"--git-dir={repo.git_dir}", "cat-file", "-t", name],
        where=str(repo.toplevel),
        timeout=timeout,
    )
    return output.stdout.decode().strip()


def resolve_revision(repo: SpecRepository, revision: str, *, timeout: float = GIT_TIMEOUT) -> str:
    """The commit `revision` names in the spec repo, or a UserError naming the revision."""
    refuse_option_like(revision, what="revision", where="--base/--head")
    commit = _rev_parse(repo, f"{revision}^{{commit}}", timeout=timeout) if revision else None
    if commit is None:
        raise GitError(
            f"revision {revision!r} does not name a commit in the spec repository {repo.toplevel}",
            hint="name a branch, tag or commit of the spec repo; in CI, check it out with its "
            "full history (fetch-depth: 0) so the base branch is there",
        )
    return commit


@contextmanager
def specs_at_revision(
    spec_dir: Path, *, revision: str, timeout: float = GIT_TIMEOUT
) -> Iterator[SpecSet]:
    """The SpecSet of `spec_dir` as of `revision`; its temporary files go when the block ends."""
    repo = spec_repository(spec_dir, timeout=timeout)
    commit = resolve_revision(repo, revision, timeout=timeout)
    shown = repo.prefix or "."
    tree = _rev_parse(repo, f"{commit}:{repo.prefix}", timeout=timeout)
    if tree is not None and _object_type(repo, tree, timeout=timeout) != "tree":
        tree = None
    if tree is None:
        raise UserError(
            f"spec directory '{shown}' does not exist at revision {revision!r}",
            hint="compare revisions that both hold the spec directory",
        )
    with tempfile.TemporaryDirectory(prefix="reconciler-specs-") as temp:
        # As deep as the checkout (see the module docstring): `..` never leaves `temp`.
        root = Path(temp).joinpath(*["_"] * (len(repo.toplevel.parts) - 1))
        materialised = root.joinpath(*repo.prefix.split("/")) if repo.prefix else root
        materialised.mkdir(parents=True, exist_ok=True)
        where = f"spec repository {repo.toplevel} at {revision}"
        GitTreeView(git_dir=repo.git_dir, tree=tree, timeout=timeout, where=where).export(
            materialised
        )
        revisioned = _Revisioned(
            repo=repo,
            revision=revision,
            commit=commit,
            temp=Path(temp),
            root=root,
            spec_dir=materialised,
            timeout=timeout,
        )
        try:
            specs = load_specs(materialised)
        except SpecErrors as exc:
            # The loader's errors name temporary paths; only the relocated ones mean anything.
            raise SpecErrors([revisioned.error(e) for e in exc.errors]) from None
        yield revisioned.spec_set(specs)


@dataclass(frozen=True)
class _Revisioned:
    """Maps paths and locations of a materialised revision back to the repository's terms."""

    repo: SpecRepository
    revision: str
    commit: str
    temp: Path
    root: Path
    spec_dir: Path
    timeout: float

    def display(self, path: str) -> str:
        return f"{self.revision}:{Path(os.path.relpath(path, self.root)).as_posix()}"

    def text(self, text: str) -> str:
        return text.replace(f"{self.root}{os.sep}", f"{self.revision}:").replace(
            str(self.root), f"{self.revision}:."
        )

    def location(self, location: SourceLocation) -> SourceLocation:
        if not self._inside(location.file, self.root):
            return location
        return replace(location, file=self.display(location.file))

    def error(self, error: SpecError) -> SpecError:
        return SpecError(
            self.text(error.message),
            location=self.location(error.location) if error.location else None,
            hint=self.text(error.hint) if error.hint else None,
        )

    def spec_set(self, specs: SpecSet) -> SpecSet:
        located = replace(
            specs,
            locations={key: self.location(value) for key, value in specs.locations.items()},
        )
        return replace(
            located,
            repos={name: self._repo(repo) for name, repo in specs.repos.items()},
            harnesses={name: self._harness(h) for name, h in specs.harnesses.items()},
            test_groups={
                name: self._test_group(group, where=located.where(group))
                for name, group in specs.test_groups.items()
            },
        )

    @staticmethod
    def _inside(path: str, directory: Path) -> bool:
        return os.path.isabs(path) and (
            path == str(directory) or path.startswith(f"{directory}{os.sep}")
        )

    def _in_checkout(self, path: str) -> str:
        """A local path under the materialised root, as the same place in the real checkout."""
        if not self._inside(path, self.temp):
            return path  # absolute in the spec, or a URL: written as meant
        return os.path.normpath(self.repo.toplevel / os.path.relpath(path, self.root))

    def _repo(self, repo: Repo) -> Repo:
        return repo.model_copy(update={"url": self._in_checkout(repo.url)})

    def _harness(self, harness: Harness) -> Harness:
        if harness.url is None:
            return harness
        return harness.model_copy(update={"url": self._in_checkout(harness.url)})

    def _test_group(self, group: TestGroup, *, where: str) -> TestGroup:
        if not group.expunges:
            return group
        return group.model_copy(
            update={"expunges": [self._expunge(path, where=where) for path in group.expunges]}
        )

    def _expunge(self, path: str, *, where: str) -> str:
        if not self._inside(path, self.temp) or self._inside(path, self.spec_dir):
            return path
        in_repo = os.path.relpath(path, self.root)
        if in_repo.split(os.sep)[0] == os.pardir:
            return self._in_checkout(path)
        # Content of the spec repo outside the spec directory: read it at the revision too.
        name = Path(in_repo).as_posix()
        output = _git(
            [f"--git-dir={self.repo.git_dir}", "cat-file", "blob", f"{self.commit}:{name}"],
            where=where,
            timeout=self.timeout,
        )
        if output.returncode != 0:
            raise UserError(
                f"expunge list {self.revision}:{name} does not exist at {self.revision!r}",
                where=where,
                hint="expunge paths are relative to the spec file that names them",
            )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(output.stdout)
        return path
