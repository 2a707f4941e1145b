"""vmrun: boot a kernel under QEMU with a busybox initramfs and run one batch of tests inside.

Why a standalone program: workers are reached only by "run a shell command" and "read a file",
and a remote worker has python3 but not the reconciler. So the modules of this package import
nothing but the standard library and each other (relatively), keep to Python 3.9 syntax, and
are shipped whole on the command line by `reconciler.adapters.vm.program`:

    python3 -c PROGRAM CONFIG            (on a worker; PROGRAM from `vmrun_program()`)
    python3 -m reconciler.adapters.vm.vmrun CONFIG          (where the reconciler is installed)

CONFIG is a JSON object, or the path of a file holding one (`main.CONFIG_KEYS` lists its keys;
an unknown key is refused, so a typo never passes silently).

What it does, in `output_dir`: writes `initramfs.cpio` (newc, deterministic: mtimes 0, owner
root, payload sorted) holding a static busybox, a generated `/init`, the command and the test
payload under `/tests` (`guest`); creates the scratch disks (sparse files, attached as
virtio-blk `/dev/vda`, `/dev/vdb`, ...); boots QEMU with the kernel console on ttyS0 and the
command's stdout and stderr on ttyS1, so printk noise never breaks a TAP line (`machine`);
watches both (`watch`) and removes the disks when the VM is gone (`main`).

Stdout protocol, one line per line, flushed as it comes:

    <test line>               a ttyS1 line, verbatim; one that would start with one of the tags
                              below is written as `[test] <line>`
    [console] <text>          a kernel console (ttyS0) line
    [qemu] <text>             QEMU's own stdout and stderr
    [vmrun] <event> <JSON>    an event, its fields a JSON object:
        start {accel, argv, initramfs_bytes, subtests}    QEMU started
        ready {seconds}           the guest booted and is about to run the command
        kernel-error {kind, line, subtest, boot}    subtest null when none was running
        watchdog {phase, subtest, seconds}          phase `boot` or `test`; VM killed
        batch-timeout {subtest, seconds}            VM killed
        guest-exit {status}       the command ended with this exit status
        guest-error {message}     the guest could not run the command
        vm-exit {reason, status, seconds}           QEMU is gone; reason in VM_EXIT_REASONS
        stopped {signal}          vmrun was told to stop; VM killed
        config-error {message}    CONFIG is wrong: nothing was started
        infra-error {message, hint}                 QEMU, busybox, the kernel image or the
                                                    payload is missing or broken

Exit status: 0 the guest ran the command to its end, 1 the VM stopped early (watchdog, kernel
panic, unexpected exit), 2 bad CONFIG, 3 infrastructure, 128+N stopped by signal N.

The running subtest is the first expected one without a result line (TAP `ok`/`not ok` at the
top level, or ktest `========= PASSED|FAILED|NOTRUN name`); a result line naming no expected
subtest finishes the first one still pending. The watchdog fires when no result arrives for
`subtest_timeout` seconds (`boot_timeout` until the guest is ready). QEMU never outlives vmrun:
it gets PR_SET_PDEATHSIG, and a vanished stdout reader (POLLERR/POLLHUP) or SIGTERM, SIGHUP
or SIGINT makes vmrun kill it before exiting.
"""

SHIPPED_MODULES = ("errors", "guest", "watch", "machine", "main")
"""The modules making up the program, each importing only ones before it."""
VM_EXIT_REASONS = (
    "finished",
    "watchdog",
    "batch-timeout",
    "kernel-panic",
    "unexpected-exit",
    "qemu-failed",
    "stopped",
)
