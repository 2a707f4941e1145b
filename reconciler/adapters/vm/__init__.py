"""Booting a built kernel under QEMU to run tests inside it (the `vm` harness's machinery).

`vmrun` is the program a worker runs: standalone and stdlib-only, because a remote worker has
python3 but not the reconciler. `console` reads its stdout back on the reconciler's side.

Why QEMU driven directly and not virtme-ng (measured with `bench/vm_boot.py`, same kernel, TCG,
7 runs): booting to a trivial command took a median 1.58 s directly against 9.12 s with vng 1.42
(5.8x; 6.06 s with `--force-9p`). Beyond speed, virtme-ng would impose its needs on every kernel
under test (9p or virtio-fs, INET, virtio-console, epoll/signalfd/timerfd/eventfd for the host's
udevd it runs in the guest, ACPI to power off), and a config without them fails in the harness
(exit 255, no message) rather than in a test; it exports the worker's whole root filesystem to
the kernel under test, so payloads would have to be installed on every worker instead of
travelling with the batch. Direct QEMU needs qemu-system-x86 and a static busybox on the worker,
and the guest sees only its initramfs and the scratch disks we attach.
"""
