"""Commit one host's status files to a dedicated branch of the spec repo, and push it.

The spec repo is someone's checkout (or the farm's clone of it), so writing status must never
touch its working tree, its index, HEAD or any user branch. Everything here is git plumbing:
blobs are written with `hash-object -w`, the tree is assembled in a *temporary* index
(`GIT_INDEX_FILE`) from the status branch's tip (`read-tree`), with our host's directory
removed and rewritten (`update-index`), then `write-tree`, `commit-tree -p <tip>` and a
compare-and-swap `update-ref <ref> <new> <old>`. `GIT_WORK_TREE` points at an empty temporary
directory, so not even a misconfigured `core.worktree` can make git look at the checkout.

Several reconciler hosts may share one spec repo remote. Each replaces only `<host-id>/`; every
other top-level entry of the tip is kept. Pushing is optimistic: we push our commit; when the
remote rejects it because another host pushed first, we fetch the remote branch, reset our local
status ref to it, and rebuild our directory on top, so the other host's files are kept. Every
failure (a rejected or failed push, a failed fetch, a lost compare-and-swap) is retried with
tenacity's exponential backoff a bounded number of times, then reported as an
`InfrastructureError` (exit 3); the local commit stays, so the next pass pushes it even if
nothing changed meanwhile.

A tree equal to the tip's tree makes no commit; a local tip already known to be on the remote
(`refs/remotes/<remote>/<branch>` equals it) makes no push. So a pass that changes nothing
costs a few local git processes and no network at all.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tenacity

from reconciler.adapters.git_mirror import GitOutput, GitProcessError, redact, run_git
from reconciler.model.errors import InfrastructureError, UserError

DEFAULT_STATUS_BRANCH = "reconciler/status"
STATUS_BRANCH_PREFIX = "reconciler/"
HOST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHUNK = 400
"""Files per `hash-object`/`update-index` call: far below any argument-length limit."""


class StatusWriteError(InfrastructureError):
    """The status branch could not be written or pushed."""


@dataclass(frozen=True)
class PushRetry:
    """How often and how patiently to retry a push (tests pass tiny waits and a recording sleep)."""

    attempts: int = 5
    wait: tenacity.wait.wait_base = field(
        default_factory=lambda: tenacity.wait_exponential(multiplier=1, min=1, max=30)
    )
    """Seconds before attempt n+1: 1, 2, 4, 8 by default."""
    sleep: Callable[[float], None] = time.sleep

    def waits(self) -> list[float]:
        """The waits between all `attempts`, as the strategy computes them."""
        waits = []
        for attempt in range(1, self.attempts):
            state = tenacity.RetryCallState(
                retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={}
            )
            state.attempt_number = attempt
            waits.append(self.wait(state))
        return waits


@dataclass(frozen=True)
class StatusWrite:
    commit: str | None
    """The commit this write made, None when the tree was unchanged."""
    pushed: bool
    changed: bool


class _Retryable(Exception):
    """One attempt failed in a way a later attempt may not: a race or the network."""


def check_status_branch(branch: str) -> None:
    """Refuse anything but a branch under `reconciler/`: status must never land on user work."""
    rest = branch.removeprefix(STATUS_BRANCH_PREFIX)
    if rest == branch or not rest or ".." in branch or "//" in branch or branch.endswith("/"):
        raise UserError(
            f"refusing to write status to branch {branch!r}: it is not under "
            f"{STATUS_BRANCH_PREFIX!r}",
            hint=f"use the default {DEFAULT_STATUS_BRANCH!r} or another reconciler/ branch",
        )


def check_host_id(host_id: str) -> None:
    if not HOST_ID_PATTERN.fullmatch(host_id):
        raise UserError(
            f"host id {host_id!r} cannot name a directory of the status branch",
            hint="use letters, digits, '.', '_' and '-' (at most 63), starting with a letter or "
            "digit",
        )


def _check_file_path(path: str) -> None:
    parts = path.split("/")
    if any(part in ("", ".", "..", ".git") for part in parts):
        raise UserError(f"status file path {path!r} is not a plain relative path")


class StatusRepo:
    """The status branch of one spec repo, written by one reconciler host at a time."""

    def __init__(
        self,
        repo: Path,
        *,
        branch: str = DEFAULT_STATUS_BRANCH,
        remote: str | None = "origin",
        retry: PushRetry | None = None,
        timeout: float = 60.0,
        network_timeout: float = 300.0,
        before_push: Callable[[str], None] | None = None,
    ) -> None:
        check_status_branch(branch)
        if remote is not None and not _REMOTE_NAME.fullmatch(remote):
            raise UserError(f"remote name {remote!r} is not a plain git remote name")
        self._repo = repo
        self._branch = branch
        self._ref = f"refs/heads/{branch}"
        self._remote = remote
        self._retry = retry or PushRetry()
        self._timeout = timeout
        self._network_timeout = network_timeout
        self._before_push = before_push
        """A seam for tests: runs just before each push with the commit about to be pushed."""
        self._git_dir = ""
        self._scratch_env: dict[str, str] = {}
        """GIT_INDEX_FILE and GIT_WORK_TREE of the write in progress, given to every command."""

    def write(self, *, host_id: str, files: Mapping[str, bytes], message: str) -> StatusWrite:
        """Make `<host_id>/` on the status branch hold exactly `files` (paths relative to it)."""
        check_host_id(host_id)
        for path in files:
            _check_file_path(path)
        self._scratch_env = {}
        self._git_dir = self._find_git_dir()
        self._refuse_checked_out_branch()
        remote = self._remote if self._remote and self._has_remote(self._remote) else None
        try:
            return self._write_in_scratch(
                host_id=host_id, files=files, message=message, remote=remote
            )
        finally:
            self._scratch_env = {}

    def _write_in_scratch(
        self, *, host_id: str, files: Mapping[str, bytes], message: str, remote: str | None
    ) -> StatusWrite:
        with tempfile.TemporaryDirectory(prefix="reconciler-status-") as scratch:
            (Path(scratch) / "empty").mkdir()
            self._scratch_env = {
                "GIT_INDEX_FILE": str(Path(scratch) / "index"),
                "GIT_WORK_TREE": str(Path(scratch) / "empty"),
            }
            entries = self._hash_blobs(host_id, files, scratch=Path(scratch))
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(self._retry.attempts),
                wait=self._retry.wait,
                sleep=self._retry.sleep,
                retry=tenacity.retry_if_exception_type(_Retryable),
                reraise=True,
            )
            try:
                for attempt in retrying:
                    with attempt:
                        return self._attempt(
                            host_id=host_id, entries=entries, message=message, remote=remote
                        )
            except _Retryable as exc:
                raise StatusWriteError(
                    f"cannot publish status branch {self._branch} to "
                    f"{remote or 'the local repository'} after "
                    f"{self._retry.attempts} attempts: {exc}",
                    where=str(self._repo),
                    hint="check the remote and the network (git -C"
                    f" {shlex.join([str(self._repo), 'push', str(remote), self._branch])});"
                    " the next pass pushes the local status commit again",
                ) from exc
        raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover

    # One attempt.

    def _attempt(
        self,
        *,
        host_id: str,
        entries: Sequence[tuple[str, str]],
        message: str,
        remote: str | None,
    ) -> StatusWrite:
        base = self._resolve(self._ref)
        tree = self._build_tree(base=base, host_id=host_id, entries=entries)
        commit = None
        if base is None or tree != self._resolve(f"{base}^{{tree}}"):
            commit = self._commit(tree=tree, parent=base, host_id=host_id, message=message)
            self._compare_and_swap(self._ref, new=commit, old=base, message=message)
        tip = commit or base
        assert tip is not None  # base is None only when a commit was made
        if remote is None:
            return StatusWrite(commit=commit, pushed=False, changed=commit is not None)
        tracking = f"refs/remotes/{remote}/{self._branch}"
        if self._resolve(tracking) == tip:
            return StatusWrite(commit=commit, pushed=False, changed=commit is not None)
        self._push(remote=remote, commit=tip, tracking=tracking)
        return StatusWrite(commit=commit, pushed=True, changed=commit is not None)

    def _build_tree(
        self,
        *,
        base: str | None,
        host_id: str,
        entries: Sequence[tuple[str, str]],
    ) -> str:
        if base is None:
            self._git(["read-tree", "--empty"])
        else:
            self._git(["read-tree", base])
            listed = self._git(["ls-tree", "-r", "-z", "--name-only", base, "--", host_id])
            ours = [path for path in listed.stdout.decode().split("\0") if path]
            for start in range(0, len(ours), _CHUNK):
                chunk = ours[start : start + _CHUNK]
                self._git(["update-index", "--force-remove", "--", *chunk])
        for start in range(0, len(entries), _CHUNK):
            infos = []
            for path, blob in entries[start : start + _CHUNK]:
                infos += ["--cacheinfo", f"100644,{blob},{path}"]
            self._git(["update-index", "--add", *infos])
        return self._git(["write-tree"]).stdout.decode().strip()

    def _commit(self, *, tree: str, parent: str | None, host_id: str, message: str) -> str:
        identity = {
            "GIT_AUTHOR_NAME": "kernel-reconciler",
            "GIT_AUTHOR_EMAIL": f"reconciler@{host_id}",
            "GIT_COMMITTER_NAME": "kernel-reconciler",
            "GIT_COMMITTER_EMAIL": f"reconciler@{host_id}",
        }
        parents = ["-p", parent] if parent else []
        args = ["commit-tree", "--no-gpg-sign", *parents, "-m", message, tree]
        return self._git(args, env=identity).stdout.decode().strip()

    def _compare_and_swap(self, ref: str, *, new: str, old: str | None, message: str) -> None:
        output = self._run(["update-ref", "-m", message, ref, new, old or ""])
        if output.returncode != 0:
            # Another writer moved the ref since we read it: start over from the new tip.
            raise _Retryable(f"{ref} moved while writing: {output.error_text()}")

    def _push(self, *, remote: str, commit: str, tracking: str) -> None:
        if self._before_push is not None:
            self._before_push(commit)
        # --no-verify: the user's pre-push hooks check their own work, not our status files.
        output = self._run(
            ["push", "--porcelain", "--no-verify", remote, f"{commit}:{self._ref}"],
            network=True,
        )
        if output.returncode == 0:
            self._run(["update-ref", tracking, commit])
            return
        rejected = [
            line
            for line in output.stdout.decode("utf-8", "replace").splitlines()
            if line.startswith("!") and "[rejected]" in line
        ]
        if not rejected:
            raise _Retryable(f"push failed: {output.error_text()}")
        # Another host pushed first: take its tip as ours and rebuild our directory on top.
        fetched = self._run(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                remote,
                f"+{self._ref}:{tracking}",
            ],
            network=True,
        )
        if fetched.returncode != 0:
            raise _Retryable(f"push rejected, then fetch failed: {fetched.error_text()}")
        local = self._resolve(self._ref)
        remote_tip = self._resolve(tracking)
        assert remote_tip is not None  # the fetch just wrote it
        self._compare_and_swap(self._ref, new=remote_tip, old=local, message="status: fetched")
        raise _Retryable("push rejected: the remote status branch moved (another host pushed)")

    # Preparation.

    def _find_git_dir(self) -> str:
        output = self._run(["-C", str(self._repo), "rev-parse", "--absolute-git-dir"], bare=True)
        if output.returncode != 0:
            raise UserError(
                f"{self._repo} is not in a git repository: {output.error_text()}",
                hint="status is written back to the spec repo: keep the specs in a git checkout",
            )
        return output.stdout.decode().strip()

    def _refuse_checked_out_branch(self) -> None:
        """A checked-out status branch would look modified to its user after our commit."""
        listed = self._git(["worktree", "list", "--porcelain"]).stdout.decode()
        if f"branch {self._ref}" in listed.splitlines():
            raise UserError(
                f"the status branch {self._branch} is checked out in a worktree of {self._repo}",
                hint="check out another branch there; status is read with git show "
                f"{shlex.quote(self._branch + ':<host-id>/status.json')}",
            )

    def _has_remote(self, remote: str) -> bool:
        return self._run(["config", "--get", f"remote.{remote}.url"]).returncode == 0

    def _hash_blobs(
        self, host_id: str, files: Mapping[str, bytes], *, scratch: Path
    ) -> list[tuple[str, str]]:
        """(path in the status tree, blob id) of every file, written to the object store."""
        paths = sorted(files)
        staged = []
        for number, path in enumerate(paths):
            file = scratch / f"blob-{number}"
            file.write_bytes(files[path])
            staged.append(str(file))
        blobs: list[str] = []
        for start in range(0, len(staged), _CHUNK):
            chunk = staged[start : start + _CHUNK]
            output = self._git(["hash-object", "-w", "--no-filters", "--", *chunk])
            blobs += output.stdout.decode().split()
        return [(f"{host_id}/{path}", blob) for path, blob in zip(paths, blobs, strict=True)]

    # Running git.

    def _resolve(self, name: str) -> str | None:
        output = self._run(["rev-parse", "--verify", "--quiet", "--end-of-options", name])
        return output.stdout.decode().strip() if output.returncode == 0 else None

    def _git(self, args: list[str], *, env: dict[str, str] | None = None) -> GitOutput:
        """A local plumbing command that must succeed: failing, the repo itself is broken."""
        output = self._run(args, env=env)
        if output.returncode != 0:
            raise StatusWriteError(
                f"git {args[0]} failed in {self._repo}: {output.error_text()}",
                hint=f"check the repository: git -C {shlex.quote(str(self._repo))} fsck",
            )
        return output

    def _run(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        network: bool = False,
        bare: bool = False,
    ) -> GitOutput:
        full = args if bare else [f"--git-dir={self._git_dir}", *args]
        timeout = self._network_timeout if network else self._timeout
        try:
            return run_git(full, timeout=timeout, extra_env={**self._scratch_env, **(env or {})})
        except GitProcessError as exc:
            if network:
                raise _Retryable(redact(str(exc))) from exc
            raise StatusWriteError(f"{exc} in {self._repo}") from exc
