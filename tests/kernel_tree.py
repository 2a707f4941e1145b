"""A real Linux tree and a real kernel for the VM and kbuild tests, made once and cached.

Debian's `linux-source-6.1` package holds the tree (`.ci/run` installs it with QEMU and busybox);
there is deliberately no skip when it is missing: CI must run these tests.

- `linux_source()`: the tarball extracted once into the test cache (read-only by convention:
  builds use `make O=...`, never the tree itself).
- `vm_kernel()`: a tinyconfig kernel with what the VM tests need (serial console, initramfs,
  virtio-blk scratch disks, ext2), built with `make O=` into the test cache and reused
  while the tree and the fragment are unchanged.

The cache lives in `$RECONCILER_TEST_CACHE`, else `~/.cache/reconciler-tests`, so a developer's
second test run skips the 1-2 minute build; CI starts from nothing every time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
VM_FRAGMENT = (
    "CONFIG_64BIT=y",
    "CONFIG_PRINTK=y",
    "CONFIG_TTY=y",
    "CONFIG_SERIAL_8250=y",
    "CONFIG_SERIAL_8250_CONSOLE=y",
    "CONFIG_BLK_DEV_INITRD=y",
    "CONFIG_BINFMT_ELF=y",
    "CONFIG_BINFMT_SCRIPT=y",
    "CONFIG_DEVTMPFS=y",
    "CONFIG_PROC_FS=y",
    "CONFIG_SYSFS=y",
    "CONFIG_BLOCK=y",
    "CONFIG_PCI=y",
    "CONFIG_VIRTIO_MENU=y",
    "CONFIG_VIRTIO_PCI=y",
    "CONFIG_VIRTIO_BLK=y",
    "CONFIG_EXT2_FS=y",
    "CONFIG_BUG=y",
    "CONFIG_MULTIUSER=y",
    "CONFIG_FUTEX=y",
)
"""On top of `tinyconfig`: the same options the kernel example's profiles ask for."""


def cache_root() -> Path:
    root = Path(os.environ.get("RECONCILER_TEST_CACHE") or Path.home() / ".cache/reconciler-tests")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two pytest processes (a developer's and a helper's) must not extract into one directory.
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def require_tarball() -> Path:
    if not TARBALL.is_file():
        pytest.fail(
            f"{TARBALL} is missing: install Debian's linux-source-6.1 (`.ci/run` does)",
            pytrace=False,
        )
    return TARBALL


def linux_source() -> Path:
    """The extracted tree (its top directory holds `Makefile`)."""
    tarball = require_tarball()
    stat = tarball.stat()
    key = hashlib.sha256(f"{tarball}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    tree = cache_root() / f"linux-{key}"
    with _locked(tree):
        if not (tree / "Makefile").is_file():
            partial = tree.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            subprocess.run(
                ["tar", "-xf", str(tarball), "-C", str(partial), "--strip-components=1"],
                check=True,
            )
            shutil.rmtree(tree, ignore_errors=True)
            partial.rename(tree)
    return tree


def vm_kernel() -> Path:
    """A bzImage booting to an initramfs shell with virtio-blk and ext2."""
    tree = linux_source()
    fragment = "\n".join(VM_FRAGMENT) + "\n"
    key = hashlib.sha256((str(tree) + fragment).encode()).hexdigest()[:12]
    obj = cache_root() / f"vm-kernel-{key}"
    image = obj / "arch/x86/boot/bzImage"
    with _locked(obj):
        if not image.is_file():
            obj.mkdir(exist_ok=True)
            (obj / "fragment.config").write_text(fragment)
            steps = [
                ["make", "-s", "-C", str(tree), f"O={obj}", "tinyconfig"],
                [
                    str(tree / "scripts/kconfig/merge_config.sh"),
                    "-m",
                    "-O",
                    str(obj),
                    str(obj / ".config"),
                    str(obj / "fragment.config"),
                ],
                ["make", "-s", "-C", str(tree), f"O={obj}", "olddefconfig"],
                ["make", "-s", "-C", str(tree), f"O={obj}", f"-j{os.cpu_count() or 2}", "bzImage"],
            ]
            for step in steps:
                subprocess.run(step, check=True, cwd=obj, stdout=subprocess.DEVNULL)
    return image


BASELINE_TAG = "v6.1"
"""The imported tree's tag in `kernel_example_repos()`'s linux.git."""


EXAMPLE = Path(__file__).resolve().parent.parent / "examples/kernel"


def kernel_example_repos() -> Path:
    """`examples/kernel/make-repos.sh`'s two bare repos (linux.git, vm-tests.git), cached by the
    content of everything that decides them. Read-only for tests."""
    tarball = require_tarball()
    digest = hashlib.sha256()
    inputs = [EXAMPLE / "make-repos.sh", EXAMPLE / "series"]
    inputs += sorted((EXAMPLE / "patches").iterdir()) + sorted((EXAMPLE / "tests").iterdir())
    for path in inputs:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    stat = tarball.stat()
    digest.update(f"{tarball}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    repos = cache_root() / f"kernel-example-{digest.hexdigest()[:12]}"
    with _locked(repos):
        if not (repos / "linux.git").is_dir() or not (repos / "vm-tests.git").is_dir():
            subprocess.run([str(EXAMPLE / "make-repos.sh"), str(repos)], check=True)
    return repos
