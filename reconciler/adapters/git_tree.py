"""One tree of a repository as files: the listing harnesses enumerate and the export workers run.

Export writes each blob's exact bytes, read from one `git cat-file --batch` process, rather than
using `git archive` or `checkout-index`: those apply the tree's `.gitattributes` (export-ignore,
eol conversion) and smudge filters from the user's config (git-lfs), so what they write would not
be the blobs `files()` lists, which identity relies on. It was also the fastest of the three in
`bench/git_resolve.py` (figures at the top of `reconciler/adapters/git.py`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import IO

from reconciler.adapters.git_mirror import (
    GitProcessError,
    git_environment,
    kill_process_group,
    run_git,
)
from reconciler.model.errors import GitError, GitUnreachableError

_BLOB_MODES = {"100644": 0o666, "100664": 0o666, "100755": 0o777, "120000": 0}
_SYMLINK_MODE = "120000"
_COPY_CHUNK = 1 << 20


class GitTreeView:
    """One tree of a repository; its listing is read once and kept."""

    def __init__(self, *, git_dir: Path, tree: str, timeout: float, where: str) -> None:
        self._git_dir = git_dir
        self._tree = tree
        self._timeout = timeout
        self._where = where
        self._entries: Mapping[str, tuple[str, str]] | None = None
        self._files: Mapping[str, str] | None = None

    @property
    def tree(self) -> str:
        return self._tree

    def files(self) -> Mapping[str, str]:
        if self._files is None:
            self._files = MappingProxyType({path: blob for path, (_, blob) in self._list().items()})
        return self._files

    def export(self, dest: Path) -> None:
        entries = self._list()
        for path in entries:
            _check_safe_path(path, where=self._where)
        # Blobs are written in the order asked; symlinks last, so that no file is ever written
        # through a symlink the tree itself created.
        try:
            proc = subprocess.Popen(
                ["git", f"--git-dir={self._git_dir}", "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=git_environment(),
                start_new_session=True,
            )
        except OSError as exc:
            raise GitUnreachableError(f"cannot run git: {exc}", where=self._where) from exc
        assert proc.stdin is not None and proc.stdout is not None
        watchdog = threading.Timer(self._timeout, kill_process_group, args=(proc,))
        feeder = threading.Thread(
            target=_feed, args=(proc.stdin, (blob for _, blob in entries.values())), daemon=True
        )
        watchdog.start()
        feeder.start()
        symlinks: list[tuple[Path, str]] = []
        try:
            for path, (mode, blob) in entries.items():
                target = dest.joinpath(*path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                size = self._read_header(proc.stdout, blob=blob)
                if mode == _SYMLINK_MODE:
                    symlinks.append((target, os.fsdecode(self._read_exact(proc.stdout, size))))
                else:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                    with os.fdopen(
                        os.open(target, flags, _BLOB_MODES.get(mode, 0o666)), "wb"
                    ) as out:
                        self._copy(proc.stdout, out, size=size)
                self._read_exact(proc.stdout, 1)  # the newline after each object
            for target, link in symlinks:
                os.symlink(link, target)
        finally:
            watchdog.cancel()
            kill_process_group(proc)
            proc.wait()
            feeder.join()
            proc.stdout.close()

    def _list(self) -> Mapping[str, tuple[str, str]]:
        """path -> (mode, blob) for every file; submodule links are not files and are left out."""
        if self._entries is None:
            try:
                output = run_git(
                    [
                        f"--git-dir={self._git_dir}",
                        "ls-tree",
                        "-r",
                        "-z",
                        "--full-tree",
                        self._tree,
                    ],
                    timeout=self._timeout,
                )
            except GitProcessError as exc:
                raise GitUnreachableError(
                    f"cannot list tree {self._tree}: {exc}", where=self._where
                ) from exc
            if output.returncode != 0:
                raise GitError(
                    f"cannot list tree {self._tree}: {output.error_text()}",
                    where=self._where,
                    hint="resolve the tree from a commit of this repository",
                )
            entries: dict[str, tuple[str, str]] = {}
            for record in output.stdout.split(b"\0"):
                if not record:
                    continue
                meta, path = record.split(b"\t", 1)
                mode, kind, blob = meta.decode().split(" ")
                if kind == "blob":
                    entries[os.fsdecode(path)] = (mode, blob)
            self._entries = entries
        return self._entries

    def _read_header(self, stream: IO[bytes], *, blob: str) -> int:
        header = stream.readline().split()
        if len(header) != 3 or header[0].decode() != blob or header[1] != b"blob":
            raise GitUnreachableError(
                f"cannot read blob {blob} of tree {self._tree} "
                f"(timed out after {self._timeout:g} s, or the repository is incomplete)",
                where=self._where,
                hint="retry; if it persists, check the repository: git fsck",
            )
        return int(header[2])

    def _read_exact(self, stream: IO[bytes], size: int) -> bytes:
        payload = stream.read(size)
        if len(payload) != size:
            raise GitUnreachableError(
                f"git stopped while exporting tree {self._tree} (timeout {self._timeout:g} s)",
                where=self._where,
                hint="retry, or raise the git timeout",
            )
        return payload

    def _copy(self, stream: IO[bytes], out: IO[bytes], *, size: int) -> None:
        remaining = size
        while remaining:
            chunk = self._read_exact(stream, min(remaining, _COPY_CHUNK))
            out.write(chunk)
            remaining -= len(chunk)


def _feed(stdin: IO[bytes], blobs: Iterable[str]) -> None:
    """Ask cat-file for every blob from a thread, so a large tree never fills both pipes."""
    try:
        for blob in blobs:
            stdin.write(f"{blob}\n".encode())
    except OSError:
        pass  # cat-file was killed (timeout, or export failed); the reader reports it
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


def _check_safe_path(path: str, *, where: str) -> None:
    """git refuses these in trees it checks, but a mirror does not fsck what it fetches."""
    parts = path.split("/")
    if path.startswith("/") or any(
        part in ("", ".", "..") or part.lower() == ".git" for part in parts
    ):
        raise GitError(
            f"tree holds an unsafe path {path!r}; refusing to export it",
            where=where,
            hint="the repository is corrupt or hostile: check it with git fsck",
        )
