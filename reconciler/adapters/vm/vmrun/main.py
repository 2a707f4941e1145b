"""vmrun's entry point: read CONFIG, boot the VM, move its output to stdout, clean up.

The protocol, CONFIG and exit statuses are described in the package docstring. This module
owns the parts that touch the process: signals, the poll loop over QEMU's three pipes and our
own stdout, and the guarantee that QEMU is dead and the scratch disks gone when vmrun returns.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from .errors import ConfigError, InfraError
from .machine import Vm
from .watch import TAG_QEMU, Supervisor, event_line

EXIT_FINISHED, EXIT_VM_FAILED, EXIT_CONFIG, EXIT_INFRASTRUCTURE = 0, 1, 2, 3
CONFIG_KEYS: dict[str, tuple[type, ...]] = {
    "kernel": (str,),  # required: the boot image
    "tests_dir": (str,),  # required: payload paths are relative to it
    "output_dir": (str,),  # required: the initramfs and scratch disks go there
    "command": (str,),  # required: run by busybox sh in /tests in the guest
    "payload": (list,),  # files or directories under tests_dir, copied to /tests
    "subtests": (list,),  # the expected subtests, in order
    "output": (str,),  # "tap" or "ktest": how result lines look
    "env": (dict,),  # exported to the command
    "subtest_timeout": (int, float),
    "boot_timeout": (int, float),
    "batch_timeout": (int, float, type(None)),
    "mem": (str,),  # QEMU -m, e.g. "256M"
    "cpus": (int,),
    "kernel_cmdline": (str,),  # appended to "console=ttyS0 panic=-1"
    "qemu_args": (list,),
    "scratch_disks": (list,),  # sizes, e.g. ["64M"]
    "busybox": (str, type(None)),  # default: busybox on PATH
    "qemu": (str, type(None)),  # default: qemu-system-<arch> on PATH
    "arch": (str, type(None)),  # default: this machine's
    "accel": (str,),  # "auto" (KVM when usable), "kvm" or "tcg"
}
REQUIRED_KEYS = ("kernel", "tests_dir", "output_dir", "command")
DEFAULTS: dict[str, Any] = {
    "payload": [],
    "subtests": [],
    "output": "tap",
    "env": {},
    "subtest_timeout": 300,
    "boot_timeout": 120,
    "batch_timeout": None,
    "mem": "256M",
    "cpus": 1,
    "kernel_cmdline": "",
    "qemu_args": [],
    "scratch_disks": [],
    "busybox": None,
    "qemu": None,
    "arch": None,
    "accel": "auto",
}
LINE_LIMIT = 65536
"""Bytes after which a line without a newline is cut, so a runaway test cannot eat memory."""
POLL_SECONDS = 0.25
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ReaderGone(Exception):
    """Nobody reads our stdout any more: the reconciler, or its SSH connection, is gone."""


def load_config(arguments: list[str]) -> dict[str, Any]:
    if len(arguments) != 1:
        raise ConfigError("usage: vmrun CONFIG (a JSON object, or the path of a file holding one)")
    text = arguments[0]
    try:
        if not text.lstrip().startswith("{"):
            with open(text) as handle:
                text = handle.read()
        loaded = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CONFIG: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError("CONFIG must be a JSON object")
    unknown = sorted(set(loaded) - set(CONFIG_KEYS))
    missing = [key for key in REQUIRED_KEYS if key not in loaded]
    problems = [f"unknown keys {unknown}"] if unknown else []
    problems += [f"missing keys {missing}"] if missing else []
    if problems:
        raise ConfigError("CONFIG has " + " and ".join(problems))
    config = {**DEFAULTS, **loaded}
    for key, types in CONFIG_KEYS.items():
        if not isinstance(config[key], types) or isinstance(config[key], bool):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in types)
            raise ConfigError(f"CONFIG key {key!r} must be {names}")
    if config["output"] not in ("tap", "ktest"):
        raise ConfigError(f"output must be tap or ktest, not {config['output']!r}")
    return config


class Output:
    """Our stdout, a line at a time and unbuffered, so the reader sees each line at once."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, lines: list[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF):
                raise ReaderGone from exc
            raise


def split_lines(buffer: bytes, *, final: bool) -> tuple[list[str], bytes]:
    """Complete lines of `buffer` (all of it when `final`), and the rest."""
    parts = buffer.split(b"\n")
    rest = parts.pop()
    if (final and rest) or len(rest) > LINE_LIMIT:
        parts.append(rest)
        rest = b""
    return [part.rstrip(b"\r").decode("utf-8", "replace") for part in parts], rest


def supervise(
    vm: Vm, fds: tuple[int, int, int], *, supervisor: Supervisor, out: Output, qemu_tail: list[str]
) -> None:
    """Copy the VM's output to `out` until QEMU has closed every pipe, killing it if asked."""
    console_fd, tests_fd, qemu_fd = fds

    def qemu_line(line: str, now: float) -> list[str]:
        qemu_tail[:] = [*qemu_tail[-4:], line]
        return [TAG_QEMU + line]

    # Console first: an Oops is charged to the running subtest before the result line it
    # provokes, read in the same round, finishes that subtest.
    handlers: dict[int, Callable[[str, float], list[str]]] = {
        console_fd: supervisor.console_line,
        tests_fd: supervisor.test_line,
        qemu_fd: qemu_line,
    }
    buffers = {fd: b"" for fd in handlers}
    poller = select.poll()
    for fd in handlers:
        poller.register(fd, select.POLLIN)
    poller.register(out.fd, 0)  # only POLLERR/POLLHUP: the reader went away
    killed = False
    while buffers:
        ready = dict(poller.poll(int(POLL_SECONDS * 1000)))
        if ready.get(out.fd, 0) & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            raise ReaderGone
        now = time.monotonic()
        for fd, handle in handlers.items():
            if fd not in ready or fd not in buffers:
                continue
            data = os.read(fd, 65536)
            lines, buffers[fd] = split_lines(buffers[fd] + data, final=not data)
            for line in lines:
                out.write(handle(line, now))
            if not data:
                poller.unregister(fd)
                os.close(fd)
                del buffers[fd]
        out.write(supervisor.tick(time.monotonic()))
        if supervisor.stop_reason is not None and not killed:
            vm.kill()
            killed = True


def run(config: dict[str, Any], out: Output) -> int:
    started = time.monotonic()
    try:
        vm = Vm(config)
    except OSError as exc:
        raise InfraError(
            f"cannot prepare the VM in {config['output_dir']}: {exc}",
            "check the worker's disk; the batch is retried",
        ) from exc
    supervisor = Supervisor(
        subtests=[str(name) for name in config["subtests"]],
        output=config["output"],
        subtest_timeout=float(config["subtest_timeout"]),
        boot_timeout=float(config["boot_timeout"]),
        batch_timeout=None if config["batch_timeout"] is None else float(config["batch_timeout"]),
        started=started,
    )
    qemu_tail: list[str] = []
    try:
        fds = vm.start()
        fields = {"accel": vm.accel, "argv": vm.started_argv, "subtests": supervisor.expected}
        out.write([event_line("start", initramfs_bytes=vm.initramfs_bytes, **fields)])
        supervise(vm, fds, supervisor=supervisor, out=out, qemu_tail=qemu_tail)
        assert vm.process is not None
        status = vm.process.wait()
    finally:
        vm.kill()
        vm.remove_disks()
    if supervisor.stop_reason is not None:
        reason = supervisor.stop_reason
    elif status != 0:
        reason = "qemu-failed"
    elif supervisor.guest_exit_at is not None:
        reason = "finished"
    elif supervisor.fatal_at is not None:
        reason = "kernel-panic"
    else:
        reason = "unexpected-exit"
    seconds = round(time.monotonic() - started, 3)
    out.write([event_line("vm-exit", reason=reason, status=status, seconds=seconds)])
    if reason == "qemu-failed":
        said = " / ".join(qemu_tail) or "nothing"
        raise InfraError(
            f"QEMU exited with status {status} (it said: {said})",
            "check the profile's qemu_args, mem and cpus and that the kernel is a bootable"
            " image for this architecture; the start event holds the command line to retry",
        )
    return EXIT_FINISHED if reason == "finished" else EXIT_VM_FAILED


def main(argv: list[str]) -> int:
    out = Output(sys.stdout.fileno())

    def stop(signum: int, frame: object) -> None:
        for other in _STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    try:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, stop)
        try:
            return run(load_config(argv[1:]), out)
        except ConfigError as exc:
            out.write([event_line("config-error", message=str(exc))])
            return EXIT_CONFIG
        except InfraError as exc:
            out.write([event_line("infra-error", message=exc.message, hint=exc.hint)])
            return EXIT_INFRASTRUCTURE
        except Stopped as exc:
            out.write([event_line("stopped", signal=str(exc))])
            return 128 + exc.signum
    except ReaderGone:
        return EXIT_VM_FAILED
