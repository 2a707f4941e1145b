"""QEMU, started so that nothing it writes is lost and it never outlives vmrun.

Why QEMU is driven directly: a test farm needs to know exactly what the guest runs and where
its output goes. The kernel console goes to the first serial port and the test channel to the
second, each a `file` chardev on a pipe QEMU inherits (`/dev/fd/N`), so no FIFO or socket is
left on disk; QEMU's own messages come on its stdout. Scratch disks are raw sparse files on
virtio-blk, written with `cache=unsafe` because they are thrown away after the batch.

QEMU gets PR_SET_PDEATHSIG (SIGKILL), armed between fork and exec: when vmrun dies, however it
dies, the kernel kills QEMU. KVM is used when it can run a guest, TCG otherwise.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
from typing import Any

from .errors import ConfigError, InfraError
from .guest import init_script, is_dynamic_elf, size_bytes, write_initramfs

CONSOLES = {"x86_64": ("ttyS0", "ttyS1")}
"""Per guest architecture: the kernel console and the test channel."""
_PR_SET_PDEATHSIG = 1
_STATIC_BUSYBOX_HINT = "install a static busybox on the worker (Debian: busybox-static)"


def kvm_usable(arch: str) -> bool:
    if arch != os.uname().machine:
        return False
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        with open("/proc/cpuinfo") as handle:
            cpuinfo = handle.read()
    except OSError:
        return False
    # In a guest without nested virtualisation /dev/kvm may open yet never run a vCPU; the
    # CPU flags tell.
    return re.search(r"^flags\s*:.*\b(?:vmx|svm)\b", cpuinfo, re.MULTILINE) is not None


def readable(path: str | None, *, what: str, hint: str) -> str:
    if path is None:
        raise InfraError(f"{what} is not installed on this worker", hint)
    try:
        with open(path, "rb"):
            return path
    except OSError as exc:
        raise InfraError(f"cannot read {what} {path}: {exc.strerror}", hint) from exc


class Vm:
    """One guest: its initramfs and disks in `output_dir`, then QEMU booting them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        arch = config["arch"] or os.uname().machine
        if arch not in CONSOLES:
            raise ConfigError(f"vmrun boots {', '.join(CONSOLES)} guests, not {arch}")
        self.console_tty, self.tests_tty = CONSOLES[arch]
        qemu_name = config["qemu"] or f"qemu-system-{arch}"
        self.qemu = readable(
            shutil.which(qemu_name),
            what=qemu_name,
            hint="install QEMU on the worker (Debian: qemu-system-x86)",
        )
        readable(
            config["kernel"],
            what="the kernel image",
            hint="the kbuild recipe leaves it in the build tree: rebuild it",
        )
        busybox = readable(
            config["busybox"] or shutil.which("busybox"), what="busybox", hint=_STATIC_BUSYBOX_HINT
        )
        if is_dynamic_elf(busybox):
            raise InfraError(
                f"{busybox} is dynamically linked: it cannot run in the VM", _STATIC_BUSYBOX_HINT
            )
        if config["accel"] not in ("auto", "kvm", "tcg"):
            raise ConfigError(f"accel must be auto, kvm or tcg, not {config['accel']!r}")
        self.accel = config["accel"]
        if self.accel == "auto":
            self.accel = "kvm" if kvm_usable(arch) else "tcg"

        output_dir = config["output_dir"]
        os.makedirs(output_dir, exist_ok=True)
        self.initramfs = os.path.join(output_dir, "initramfs.cpio")
        self.initramfs_bytes = write_initramfs(
            self.initramfs,
            busybox=busybox,
            init=init_script(tests_tty=self.tests_tty, env=config["env"]),
            command=config["command"],
            tests_dir=config["tests_dir"],
            payload=config["payload"],
        )
        # The guest unpacks the archive into RAM while holding the archive itself.
        if self.initramfs_bytes * 2 > size_bytes(config["mem"], unit=1 << 20):
            raise ConfigError(
                f"the initramfs ({self.initramfs_bytes >> 20} MiB with the test payload) does"
                f" not fit twice in the VM's {config['mem']} of memory: raise `mem`"
            )
        sizes = [size_bytes(str(size), unit=1) for size in config["scratch_disks"]]
        self.disks: list[str] = []
        for index, size in enumerate(sizes):
            self.disks.append(os.path.join(output_dir, f"scratch-{index}.img"))
            with open(self.disks[-1], "wb") as handle:
                handle.truncate(size)
        self.process: subprocess.Popen[bytes] | None = None
        self.started_argv: list[str] = []

    def argv(self, *, console_fd: int, tests_fd: int) -> list[str]:
        config = self.config
        cmdline = f"console={self.console_tty} panic=-1 {config['kernel_cmdline']}".strip()
        argv = [self.qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
        argv += ["-accel", self.accel, "-m", config["mem"], "-smp", str(config["cpus"])]
        argv += ["-cpu", "host"] if self.accel == "kvm" else []
        argv += ["-kernel", config["kernel"], "-initrd", self.initramfs, "-append", cmdline]
        for name, fd in (("console", console_fd), ("tests", tests_fd)):
            argv += ["-chardev", f"file,id={name},path=/dev/fd/{fd}", "-serial", f"chardev:{name}"]
        for disk in self.disks:
            # QEMU's option syntax: a comma inside a value is written twice.
            argv += ["-drive", f"file={disk.replace(',', ',,')},format=raw,if=virtio,cache=unsafe"]
        return argv + [str(argument) for argument in config["qemu_args"]]

    def start(self) -> tuple[int, int, int]:
        """Start QEMU; the read ends of its console, test channel and own output pipes."""
        console_r, console_w = os.pipe()
        tests_r, tests_w = os.pipe()
        parent, prctl = os.getpid(), ctypes.CDLL(None, use_errno=True).prctl

        def die_with_parent() -> None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # vmrun died before the death signal was armed
                os._exit(1)

        self.started_argv = self.argv(console_fd=console_w, tests_fd=tests_w)
        try:
            self.process = subprocess.Popen(
                self.started_argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(console_w, tests_w),
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            os.close(console_r)
            os.close(tests_r)
            raise InfraError(
                f"cannot start {self.qemu}: {exc.strerror}", "check the QEMU install on the worker"
            ) from exc
        finally:
            os.close(console_w)
            os.close(tests_w)
        assert self.process.stdout is not None
        return console_r, tests_r, self.process.stdout.fileno()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def remove_disks(self) -> None:
        for path in self.disks:
            if os.path.exists(path):
                os.unlink(path)
