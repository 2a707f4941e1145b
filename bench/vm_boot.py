"""Boot one kernel two ways, direct QEMU and virtme-ng, and time each to a trivial command.

Why: issue 6 asks whether the VM runner should drive QEMU itself or use virtme-ng (`vng`), and
the answer should rest on numbers taken with the same kernel on the same machine. Each run is
timed from the command's start until the guest has printed a marker line and QEMU has exited:

  direct-qemu   (the baseline) write a newc initramfs holding a static busybox and an /init that
                prints the marker and calls `reboot -f`, then boot it with
                `qemu-system-x86_64 -nodefaults -display none -no-reboot -kernel K -initrd I`,
                serial console on stdout, as `reconciler/adapters/vm/vmrun` does;
  vng           `vng --run K -e 'echo MARKER'`: the guest mounts the host's root file system
                read-only over 9p or virtio-fs, runs virtme-ng-init and the host's
                systemd-udevd, and the command's output comes back over virtio-serial;
  vng-9p        the same with `--force-9p`, which skips vng's attempt to start virtiofsd.

Rounds are interleaved (direct, vng, vng-9p, direct, ...) after one unmeasured warm-up round, so
a machine busy with other work slows every row alike. Both get the same guest shape (`--mem`,
`--cpus`) and accelerator (`--accel`, default tcg: virtme-ng treats a /dev/kvm it can open as
usable, and in a guest without nested virtualisation QEMU then aborts).

The kernel: one both can boot. virtme-ng needs more than the runner's VM fragment
(`VM_FRAGMENT` in tests/kernel_tree.py), listed in VNG_KCONFIG below; when the kernel sits in a
kbuild output directory, its .config is checked for them. From a Linux tree, with both lists in
`fragment.config`:

  make O=OBJ tinyconfig
  scripts/kconfig/merge_config.sh -m -O OBJ OBJ/.config fragment.config
  make O=OBJ olddefconfig       # then check every fragment line is in OBJ/.config
  make O=OBJ -j2 bzImage        # OBJ/arch/x86/boot/bzImage

olddefconfig drops an option whose dependencies are unmet without a word (9P_FS without INET).

Measured 2026-11-21 on a 2-core AMD EPYC guest (TCG; load ~2.8 from kernel builds alongside),
Linux 6.1 tinyconfig + both fragments, virtme-ng 1.42, QEMU 7.2, 256M, 1 CPU, 7 runs:

  way          runs   min s  median s   max s  vs direct
  direct-qemu     7    1.44      1.58    1.68      1.00x
  vng             7    8.31      9.12    9.76      5.79x
  vng-9p          7    5.80      6.06    6.62      3.84x

vng's extra 3 s over vng-9p is its wait for virtiofsd: Debian 12's QEMU ships the C daemon,
which rejects the Rust daemon's options; vng polls 3.1 s for it, then falls back to 9p. With
1G and 2 CPUs (vng's defaults) the ratios were 5.75x and 3.48x.

Exit status: 0 every row measured; 1 bad argument (no such kernel, busybox missing or dynamic,
--runs < 1); 2 incomplete: vng not found (how to install it is printed) or a boot failed or timed
out (its output's tail is printed); 3 QEMU is not installed. A benchmark: it asserts no timing.

Usage: python bench/vm_boot.py --kernel PATH [--runs 5] [--vng PATH] [--busybox PATH]
       [--qemu PATH] [--mem 256M] [--cpus 1] [--accel tcg|kvm] [--timeout 300]
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters.vm.vmrun.guest import Cpio, is_dynamic_elf

MARKER = "vm-boot-bench: ok"
CMDLINE = "console=ttyS0 panic=-1"
VNG_INSTALL_HINT = (
    "install it into its own venv: python3 -m venv /tmp/vng-venv && "
    "/tmp/vng-venv/bin/pip install virtme-ng, then pass --vng /tmp/vng-venv/bin/vng"
)
VNG_KCONFIG = (
    # The host's root file system over 9p (virtio-fs needs FUSE_FS, VIRTIO_FS and DAX too).
    "CONFIG_NET=y",
    "CONFIG_INET=y",  # 9P_FS depends on it; olddefconfig drops 9P_FS silently without it
    "CONFIG_NETWORK_FILESYSTEMS=y",
    "CONFIG_NET_9P=y",
    "CONFIG_NET_9P_VIRTIO=y",
    "CONFIG_9P_FS=y",
    # virtme-ng-init: tmpfs over /run and /tmp, overlays over /etc, /var ..., devpts.
    "CONFIG_SHMEM=y",
    "CONFIG_TMPFS=y",
    "CONFIG_OVERLAY_FS=y",
    "CONFIG_UNIX98_PTYS=y",
    "CONFIG_UNIX=y",
    # The command's stdin/stdout/stderr/exit code travel over named virtio-serial ports, which
    # the host's systemd-udevd links under /dev/virtio-ports; udevd needs epoll and friends.
    "CONFIG_VIRTIO_CONSOLE=y",
    "CONFIG_EPOLL=y",
    "CONFIG_SIGNALFD=y",
    "CONFIG_TIMERFD=y",
    "CONFIG_EVENTFD=y",
    "CONFIG_INOTIFY_USER=y",
    # virtme-ng-init powers the guest off; without ACPI the kernel only halts and QEMU waits.
    "CONFIG_ACPI=y",
)
EXIT_OK, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INFRA = 0, 1, 2, 3


# --- the initramfs: newc cpio written here, so neither cpio nor root is needed ------------


def initramfs(busybox: bytes) -> bytes:
    """A newc archive (written by the runner's own `Cpio`): /bin/busybox and an /init that
    prints MARKER and reboots (QEMU exits)."""
    init = f"#!/bin/busybox sh\necho '{MARKER}'\n/bin/busybox reboot -f\n".encode()
    archive = io.BytesIO()
    cpio = Cpio(archive)
    cpio.directory("bin")
    cpio.directory("dev")
    # The kernel opens /dev/console for init before anything could mount devtmpfs.
    cpio.entry("dev/console", stat.S_IFCHR | 0o600, rdev=os.makedev(5, 1))
    cpio.file("bin/busybox", busybox, executable=True)
    cpio.file("init", init, executable=True)
    cpio.finish()
    return archive.getvalue()


# --- the two ways to boot -------------------------------------------------------------------


@dataclass
class Way:
    name: str
    argv: list[str]
    env: dict[str, str]
    initramfs_from: bytes | None = None
    """Busybox bytes: write the initramfs inside the timed run, as the runner does per batch."""
    verbose_argv: list[str] | None = None
    """The same boot printing the guest's console, run once to explain a failure."""
    seconds: list[float] = field(default_factory=list)
    failure: str | None = None


def direct_qemu(
    *, qemu: str, kernel: Path, busybox: bytes, scratch: Path, args: argparse.Namespace
) -> Way:
    image = scratch / "initramfs.cpio"
    argv = [qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
    argv += ["-accel", args.accel, "-m", args.mem, "-smp", str(args.cpus)]
    argv += ["-cpu", "host"] if args.accel == "kvm" else []
    argv += ["-kernel", str(kernel), "-initrd", str(image), "-append", CMDLINE]
    argv += ["-serial", "stdio"]
    return Way("direct-qemu", argv, dict(os.environ), initramfs_from=busybox)


def virtme_ng(
    *, vng: str, kernel: Path, qemu: str, args: argparse.Namespace, force_9p: bool
) -> Way:
    # vng runs `virtme-run` from PATH: a venv's bin directory must be on it.
    env = {**os.environ, "PATH": f"{Path(vng).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    argv = [vng, "--run", str(kernel), "--qemu", qemu, "--memory", args.mem]
    argv += ["--cpus", str(args.cpus), "--exec", f"echo '{MARKER}'"]
    argv += ["--disable-kvm"] if args.accel == "tcg" else []
    argv += ["--force-9p"] if force_9p else []
    return Way("vng-9p" if force_9p else "vng", argv, env, verbose_argv=[*argv, "--verbose"])


def boot(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> str | None:
    """None when QEMU exited 0 after the guest printed MARKER; else what went wrong."""
    try:
        done = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return f"timed out after {timeout:.0f} s{tail((exc.stdout or b'') + (exc.stderr or b''))}"
    marker_seen = MARKER.encode() in done.stdout
    if done.returncode == 0 and marker_seen:
        return None
    seen = "printed" if marker_seen else "never printed"
    return f"exit status {done.returncode}, marker {seen}{tail(done.stdout + done.stderr)}"


def run_once(way: Way, *, scratch: Path, timeout: float) -> float | None:
    """Seconds from start to QEMU's exit, or None (and `way.failure` set) when it failed."""
    started = time.perf_counter()
    if way.initramfs_from is not None:
        (scratch / "initramfs.cpio").write_bytes(initramfs(way.initramfs_from))
    failure = boot(way.argv, env=way.env, cwd=scratch, timeout=timeout)
    seconds = time.perf_counter() - started
    if failure is None:
        return seconds
    way.failure = failure
    if way.verbose_argv is not None:
        # Without --verbose vng sends the serial console to /dev/null: a kernel that cannot
        # mount the host's root or run udevd fails with exit status 255 and says nothing.
        again = boot(way.verbose_argv, env=way.env, cwd=scratch, timeout=timeout)
        way.failure += f"\n  again with --verbose (serial console): {again or 'it passed'}"
    return None


def tail(output: bytes, lines: int = 15) -> str:
    """The last lines of `output`, indented, after a newline; empty when there is none."""
    return "".join(
        "\n    " + line for line in output.decode(errors="replace").splitlines()[-lines:]
    )


# --- checks before booting ------------------------------------------------------------------


def kernel_config(kernel: Path) -> Path | None:
    """The .config of a kbuild output directory holding `kernel` (arch/*/boot/bzImage)."""
    for parent in list(kernel.resolve().parents)[:4]:
        if (parent / ".config").is_file():
            return parent / ".config"
    return None


def missing_vng_options(config: Path) -> list[str]:
    present = set(config.read_text(errors="replace").splitlines())
    return [option for option in VNG_KCONFIG if option not in present]


def statically_linked(path: str) -> bool:
    """True for an ELF file needing no program interpreter (the runner's own check)."""
    with open(path, "rb") as handle:
        elf = handle.read(4) == b"\x7fELF"
    return elf and not is_dynamic_elf(path)


# --- main ---------------------------------------------------------------------------------


def report(ways: Sequence[Way], runs: int) -> None:
    baseline = statistics.median(ways[0].seconds) if ways[0].seconds else None
    print(f"{'way':<12} {'runs':>4} {'min s':>7} {'median s':>9} {'max s':>7} {'vs direct':>10}")
    for way in ways:
        if not way.seconds:
            print(f"{way.name:<12} {0:>4}  failed")
            continue
        median = statistics.median(way.seconds)
        ratio = f"{median / baseline:.2f}x" if baseline else "-"
        print(
            f"{way.name:<12} {len(way.seconds):>4} {min(way.seconds):>7.2f} {median:>9.2f}"
            f" {max(way.seconds):>7.2f} {ratio:>10}"
        )
        if len(way.seconds) < runs:
            print(f"{'':<12} (only {len(way.seconds)} of {runs} runs succeeded)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", type=Path, required=True, help="an x86_64 bzImage")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--vng", default=shutil.which("vng"), help="the vng program (default: on PATH)"
    )
    parser.add_argument("--busybox", default=shutil.which("busybox") or "/bin/busybox")
    parser.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    parser.add_argument(
        "--mem", default="256M", help="guest memory for both (vng's own default is 1G)"
    )
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per boot")
    args = parser.parse_args(argv)

    if not args.kernel.is_file():
        print(
            f"error: --kernel {args.kernel}: no such file (how to build one: {__file__}, top)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.runs < 1:
        print("error: --runs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if not Path(args.busybox).is_file() or not statically_linked(args.busybox):
        print(
            f"error: --busybox {args.busybox} is missing or dynamically linked: it must run alone"
            " in the initramfs (apt-get install busybox-static)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.qemu is None:
        print(
            "error: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)",
            file=sys.stderr,
        )
        return EXIT_INFRA

    incomplete = False
    with tempfile.TemporaryDirectory(prefix="vm-boot-bench-") as scratch_name:
        scratch = Path(scratch_name)
        busybox = Path(args.busybox).read_bytes()
        ways = [
            direct_qemu(
                qemu=args.qemu, kernel=args.kernel, busybox=busybox, scratch=scratch, args=args
            )
        ]
        if args.vng is None or not Path(args.vng).is_file():
            where = args.vng or "not on PATH"
            print(f"vng: not found ({where}): only direct QEMU is measured; {VNG_INSTALL_HINT}")
            incomplete = True
        else:
            version = subprocess.run(
                [args.vng, "--version"], capture_output=True, text=True, check=False
            )
            print(f"vng: {args.vng} ({version.stdout.strip() or version.stderr.strip()})")
            config = kernel_config(args.kernel)
            if config is not None and (missing := missing_vng_options(config)):
                print(f"warning: {config} lacks what virtme-ng needs: {' '.join(missing)}")
            for force_9p in (False, True):
                ways.append(
                    virtme_ng(
                        vng=args.vng,
                        kernel=args.kernel,
                        qemu=args.qemu,
                        args=args,
                        force_9p=force_9p,
                    )
                )
        print(
            f"kernel: {args.kernel}; guest: {args.mem}, {args.cpus} CPU, {args.accel};"
            f" {args.runs} runs after 1 warm-up; load average {os.getloadavg()[0]:.2f}"
        )

        for round_number in range(args.runs + 1):
            for way in ways:
                if way.failure is not None:
                    continue
                seconds = run_once(way, scratch=scratch, timeout=args.timeout)
                if seconds is not None and round_number > 0:
                    way.seconds.append(seconds)

    report(ways, args.runs)
    for way in ways:
        if way.failure is not None:
            incomplete = True
            print(f"\n{way.name} failed: {way.failure}\n  command: {shlex.join(way.argv)}")
    return EXIT_INCOMPLETE if incomplete else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
