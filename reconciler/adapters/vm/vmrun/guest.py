"""The guest's whole user space: one initramfs with busybox, an init script and the tests.

Why build it here rather than use a distribution image: a newc cpio is 40 lines of Python, a
static busybox is on every worker that installs `busybox-static`, and the result boots any
kernel with `CONFIG_BLK_DEV_INITRD` in a second under TCG. It is written deterministically
(entries in a fixed order, payload sorted, mtimes 0, owner root, inodes numbered in order), so
the same batch on the same worker gives the same bytes.

The init script mounts proc, sysfs and devtmpfs, sends its own output to the test channel,
prints `GUEST_MARKER ready`, runs the batch's command with busybox `sh` in `/tests`, prints
`GUEST_MARKER exit <status>` and reboots, which QEMU's `-no-reboot` turns into an exit (there
is no ACPI to power off with). The command lives in a file of its own, so a syntax error in it
is that command's failure (exit status 2), never a broken init.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import struct
from typing import IO, Any

from .errors import ConfigError, InfraError

GUEST_MARKER = "@@vmrun-guest@@ "
"""Starts the init script's lines to vmrun: `ready`, `exit <status>`, `error <message>`."""
GUEST_TESTS_DIR = "tests"
INIT_SCRIPT = """#!/bin/busybox sh
# Written by vmrun: mount what tests expect, run the batch's command in /tests with its output
# on /dev/{tests}, report its exit status, reboot (QEMU runs with -no-reboot, so it exits).
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if [ ! -c /dev/{tests} ]; then
    echo "{marker}error /dev/{tests} is missing: the kernel needs 2 or more 8250 UARTs"
    reboot -f
fi
stty -F /dev/{tests} raw -echo 2>/dev/null
exec </dev/null >/dev/{tests} 2>&1
{exports}echo "{marker}ready"
cd /tests
sh /vmrun/command
echo "{marker}exit $?"
sync
reboot -f
"""
_BASE_DIRECTORIES = ("bin", "dev", "mnt", "proc", "root", "sys", GUEST_TESTS_DIR, "tmp", "vmrun")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PT_INTERP = 3


class Cpio:
    """A newc archive, as the kernel unpacks an initramfs; parents are added before children."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.inode = 0
        self.directories: set[str] = set()

    def entry(self, name: str, mode: int, data: bytes = b"", *, rdev: int = 0) -> None:
        for index, char in enumerate(name):
            if char == "/" and name[:index] not in self.directories:
                self.directory(name[:index])
        self.inode += 1
        encoded = name.encode("utf-8", "surrogateescape") + b"\0"
        links = 2 if stat.S_ISDIR(mode) else 1
        fields = [self.inode, mode, 0, 0, links, 0, len(data), 0, 0]
        fields += [os.major(rdev), os.minor(rdev), len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        for chunk in (header + encoded, data):
            self.handle.write(chunk)
            self.handle.write(b"\0" * (-self.handle.tell() % 4))

    def directory(self, name: str) -> None:
        if name not in self.directories:
            self.directories.add(name)
            self.entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, *, executable: bool) -> None:
        self.entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)

    def copy(self, name: str, source: str) -> None:
        """A file, directory or symlink from this machine; other kinds are left out."""
        info = os.lstat(source)
        if stat.S_ISLNK(info.st_mode):
            self.entry(name, stat.S_IFLNK | 0o777, os.fsencode(os.readlink(source)))
        elif stat.S_ISDIR(info.st_mode):
            self.directory(name)
        elif stat.S_ISREG(info.st_mode):
            with open(source, "rb") as handle:
                self.file(name, handle.read(), executable=bool(info.st_mode & 0o111))

    def finish(self) -> int:
        """Write the trailer; the archive's size in bytes."""
        self.inode = -1  # the trailer's inode is 0
        self.entry("TRAILER!!!", 0)
        return self.handle.tell()


def payload_entries(tests_dir: str, paths: list[str]) -> list[tuple[str, str]]:
    """(path in the initramfs, path here) of every payload file, directory and symlink."""
    entries: dict[str, str] = {}
    root = os.path.realpath(tests_dir)
    for path in paths:
        relative = os.path.normpath(str(path))
        if os.path.isabs(relative) or relative.split(os.sep)[0] == "..":
            raise ConfigError(f"payload path {path!r} is not inside tests_dir")
        source = os.path.join(tests_dir, relative)
        # Symlinks inside the payload are copied as links; one on the way to it must not
        # carry files of the worker into the guest.
        if os.path.commonpath([root, os.path.realpath(os.path.dirname(source))]) != root:
            raise ConfigError(f"payload path {path!r} leads out of tests_dir through a symlink")
        if not os.path.lexists(source):
            raise InfraError(
                f"the test payload {path!r} is missing from {tests_dir}",
                "check the tests checkout on the worker; the batch is retried",
            )
        if relative != ".":
            entries[relative] = source
        if os.path.isdir(source) and not os.path.islink(source):
            for root, directories, files in os.walk(source):
                directories[:] = [name for name in directories if name != ".git"]
                for name in directories + files:
                    full = os.path.join(root, name)
                    entries[os.path.relpath(full, tests_dir)] = full
    return sorted((f"{GUEST_TESTS_DIR}/{name}", source) for name, source in entries.items())


def init_script(*, tests_tty: str, env: dict[str, Any]) -> str:
    for name in env:
        if not _SHELL_NAME.fullmatch(str(name)):
            raise ConfigError(f"environment variable name {name!r} is not a shell name")
    exports = "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in env.items())
    return INIT_SCRIPT.format(tests=tests_tty, marker=GUEST_MARKER, exports=exports)


def write_initramfs(
    path: str, *, busybox: str, init: str, command: str, tests_dir: str, payload: list[str]
) -> int:
    """Write the initramfs to `path`; its size in bytes."""
    entries = payload_entries(tests_dir, payload)
    with open(path, "wb") as handle:
        cpio = Cpio(handle)
        for directory in _BASE_DIRECTORIES:
            cpio.directory(directory)
        # The kernel opens /dev/console for init before anything is mounted.
        cpio.entry("dev/console", stat.S_IFCHR | 0o600, rdev=os.makedev(5, 1))
        with open(busybox, "rb") as source:
            cpio.file("bin/busybox", source.read(), executable=True)
        cpio.file("init", init.encode(), executable=True)
        cpio.file("vmrun/command", command.encode(), executable=False)
        for name, source_path in entries:
            cpio.copy(name, source_path)
        return cpio.finish()


def size_bytes(text: str, *, unit: int) -> int:
    """`64M`, `2G` (powers of 1024); a bare number counts in `unit` bytes."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", text.strip())
    if match is None:
        raise ConfigError(f"{text!r} is not a size such as 64M or 2G")
    if not match[2]:
        return int(match[1]) * unit
    return int(match[1]) << (10 * ("KMGT".index(match[2]) + 1))


def is_dynamic_elf(path: str) -> bool:
    """True when the ELF file at `path` needs a program interpreter (PT_INTERP): such a
    busybox cannot run alone in the initramfs, and its failure would look like the kernel's."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF":
            return False
        order = "<" if header[5] == 1 else ">"
        if header[4] == 2:
            (offset,) = struct.unpack_from(order + "Q", header, 32)
            size, count = struct.unpack_from(order + "HH", header, 54)
        else:
            (offset,) = struct.unpack_from(order + "I", header, 28)
            size, count = struct.unpack_from(order + "HH", header, 42)
        for index in range(count):
            handle.seek(offset + index * size)
            kind: int = struct.unpack(order + "I", handle.read(4))[0]
            if kind == _PT_INTERP:
                return True
    return False
