"""Publishing a generated site: staged beside the target, swapped in whole, unchanged files kept.

A web server serving DIR must never show half a dashboard, so the new site is built in a
temporary directory beside DIR (same filesystem) and exchanged with it in one `renameat2`
(RENAME_EXCHANGE) where Linux offers it, two renames otherwise. Files whose bytes did not change
are hard links to the old ones: same inode, same mtime, so rsync, caches and `watch` see nothing
new. When nothing changed at all, DIR is not touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from types import TracebackType

from reconciler.model.errors import InfrastructureError, UserError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class SiteWriter:
    """Collects a site's files one at a time (bounded memory), then publishes them."""

    def __init__(self, out: Path) -> None:
        # A symlinked DIR (/var/www/ci -> /srv/ci) is published where it points, and stays a link.
        self.out = out.resolve() if out.is_symlink() else out
        self.changed: list[Path] = []
        self.removed: list[Path] = []
        self._written: set[PurePosixPath] = set()
        self._staged: dict[bytes, Path] = {}
        """sha256 → a staged file holding those bytes."""
        self._staging: Path | None = None

    def __enter__(self) -> SiteWriter:
        if self.out.exists() and not self.out.is_dir():
            raise UserError(
                f"{self.out} exists and is not a directory", hint="choose another --out"
            )
        parent = self.out.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=parent))
        except OSError as exc:
            raise InfrastructureError(
                f"cannot create a directory beside {self.out}: {exc}"
            ) from exc
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def add(self, relative: str, data: bytes) -> None:
        """Put `data` at `relative` (a POSIX path inside the site) in the new site."""
        if self._staging is None:
            raise RuntimeError("SiteWriter.add outside its `with` block")
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts or path in self._written:
            raise ValueError(f"bad or repeated site path {relative!r}")
        self._written.add(path)
        target = self._staging.joinpath(*path.parts)
        old = self.out.joinpath(*path.parts)
        digest = hashlib.sha256(data).digest()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            unchanged = _same_bytes(old, data)
            if unchanged:
                _link_or_copy(old, target)
            elif digest in self._staged:
                # The same bytes at two paths (a log in logs/ and in api/): stored once.
                _link_or_copy(self._staged[digest], target)
            else:
                target.write_bytes(data)
        except OSError as exc:
            raise InfrastructureError(f"cannot write {target}: {exc}") from exc
        self._staged.setdefault(digest, target)
        if not unchanged:
            self.changed.append(Path(*path.parts))

    def publish(self) -> None:
        """Make the staged site DIR; a no-op when every file is as it was."""
        if self._staging is None:
            raise RuntimeError("SiteWriter.publish outside its `with` block")
        self.removed = sorted(
            Path(*p.parts) for p in _files_under(self.out) if p not in self._written
        )
        if not self.changed and not self.removed and self.out.is_dir():
            return
        try:
            for directory in sorted(_directories(self._staging)):
                directory.chmod(0o755)  # mkdtemp's 0700 would hide the site from a web server
            _fsync_tree(self._staging)
            if self.out.is_dir():
                _exchange(self._staging, self.out)
                # The staging path now holds the old site, removed on exit.
            else:
                self._staging.rename(self.out)
                self._staging = None
        except OSError as exc:
            raise InfrastructureError(f"cannot publish the site to {self.out}: {exc}") from exc


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)  # a filesystem without hard links


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def _files_under(root: Path) -> list[PurePosixPath]:
    if not root.is_dir():
        return []
    return [
        PurePosixPath(path.relative_to(root).as_posix())
        for path in root.rglob("*")
        if path.is_file() or path.is_symlink()
    ]


def _directories(root: Path) -> list[Path]:
    return [root, *(path for path in root.rglob("*") if path.is_dir())]


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _exchange(staging: Path, out: Path) -> None:
    """Swap two directories: atomically with renameat2, else rename out away first."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        result = renameat2(
            _AT_FDCWD, os.fsencode(staging), _AT_FDCWD, os.fsencode(out), _RENAME_EXCHANGE
        )
        if result == 0:
            return
        errno = ctypes.get_errno()
        # EINVAL/ENOSYS: the filesystem or kernel cannot exchange; fall back below.
        if errno not in (22, 38):
            raise OSError(errno, os.strerror(errno), str(out))
    aside = staging.with_name(staging.name + ".old")
    out.rename(aside)
    staging.rename(out)
    aside.rename(staging)
