"""Reading a kdevops results archive: a tarball of fstests results per kernel and section.

The archive holds `<kernel>/<section>/{result.xml,check.log,check.time,<dir>/<NNN>.out.bad,...}`
(a leading `./` is allowed). Each (kernel, section) is read as one fstests results directory.

An archive comes from elsewhere, so nothing is extracted: members are read in memory, and the
whole archive is validated before any of it is used. Refused, with nothing imported:
- a damaged or truncated archive (tarfile cannot read to its end, or a member comes up short);
- a member name that is absolute, climbs with `..`, or is listed twice;
- a symlink or hard link whose target leaves the archive's tree (links inside it are followed);
- anything but directories, regular files and links (devices, FIFOs);
- a file outside the layout (at the top, or directly in a kernel directory), or a section
  with neither result.xml nor check.log;
- a member larger than `MAX_MEMBER_BYTES`.
Formats are whatever `tarfile` opens (.tar, .tar.gz, .tar.bz2, .tar.xz); zstd is not among them
in Python 3.11, so a `.zst` archive is refused with a hint to decompress it first.
"""

from __future__ import annotations

import lzma
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from reconciler.app.importers.fstests import is_fstests_file
from reconciler.model.errors import UserError

MAX_MEMBER_BYTES = 256 * 1024 * 1024
_RESULT_FILES = ("result.xml", "check.log")


@dataclass(frozen=True)
class ArchiveSection:
    kernel: str
    section: str
    files: dict[str, bytes]
    """Paths relative to the section directory -> bytes."""


def read_archive(path: Path) -> list[ArchiveSection]:
    """Every (kernel, section) of the archive, sorted; UserError if anything is wrong."""
    if path.name.endswith((".zst", ".zstd")):
        raise UserError(
            f"{path}: zstd archives cannot be read by Python's tarfile",
            hint=f"decompress first: zstd -d {path.name}, then import the .tar",
        )
    try:
        with tarfile.open(path, mode="r:*") as archive:
            members = archive.getmembers()  # reads to the end: a truncated archive fails here
            files = _validated_files(members, where=path)
            sections: dict[tuple[str, str], dict[str, bytes]] = {}
            for name, member in files.items():
                kernel, section, rest = name.split("/", 2)
                contents = sections.setdefault((kernel, section), {})
                if is_fstests_file(rest):  # other files (kdevops' own notes) are not read
                    contents[rest] = _read(archive, member, path)
    except FileNotFoundError as exc:
        raise UserError(f"{path} does not exist") from exc
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise UserError(
            f"{path} is not a readable tar archive: {exc}",
            hint="the archive may be truncated; fetch it again",
        ) from exc
    if not sections:
        raise UserError(f"{path} holds no <kernel>/<section>/ results", hint=_LAYOUT)
    for (kernel, section), contents in sections.items():
        if not any(name in contents for name in _RESULT_FILES):
            raise UserError(
                f"{path}: {kernel}/{section} has neither result.xml nor check.log", hint=_LAYOUT
            )
    return [ArchiveSection(k, s, sections[k, s]) for k, s in sorted(sections)]


_LAYOUT = "the archive must hold <kernel>/<section>/result.xml (or check.log) and test outputs"


def _validated_files(members: list[tarfile.TarInfo], *, where: Path) -> dict[str, tarfile.TarInfo]:
    names: set[str] = set()
    files: dict[str, tarfile.TarInfo] = {}
    for member in members:
        name = _member_name(member.name, where=where)
        if name in names:
            raise UserError(f"{where}: {name} is in the archive twice", hint="rebuild the archive")
        names.add(name)
        if member.isdir():
            continue
        if member.issym() or member.islnk():
            _check_link(member, name=name, where=where)
        elif not member.isreg():
            raise UserError(
                f"{where}: {name} is not a regular file, directory or link", hint=_LAYOUT
            )
        if member.size > MAX_MEMBER_BYTES:
            raise UserError(f"{where}: {name} is larger than {MAX_MEMBER_BYTES} bytes")
        if name.count("/") < 2:
            raise UserError(f"{where}: {name} is outside <kernel>/<section>/", hint=_LAYOUT)
        files[name] = member
    return files


def _member_name(raw: str, *, where: Path) -> str:
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    parts = name.split("/")
    if raw.startswith("/") or not name or any(part in ("", ".", "..") for part in parts):
        raise UserError(
            f"{where}: member name {raw!r} is absolute or leaves the archive",
            hint="refusing a path-traversal archive; nothing was imported",
        )
    return name


def _check_link(member: tarfile.TarInfo, *, name: str, where: Path) -> None:
    target = member.linkname
    base = posixpath.dirname(name) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise UserError(
            f"{where}: link {name} -> {target} points outside the archive",
            hint="refusing a path-traversal archive; nothing was imported",
        )


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo, where: Path) -> bytes:
    try:
        handle = archive.extractfile(member)
    except KeyError as exc:  # a link to a member the archive does not have
        raise UserError(f"{where}: link {member.name} points to a missing member") from exc
    if handle is None:
        raise UserError(f"{where}: {member.name} has no contents")
    with handle:
        data = handle.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise UserError(f"{where}: {member.name} is larger than {MAX_MEMBER_BYTES} bytes")
    return data
