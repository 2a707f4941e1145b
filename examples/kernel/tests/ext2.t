#!/bin/sh
# A small filesystem test on the VM's first scratch disk (/dev/vda), as TAP: make an ext2
# filesystem with busybox mke2fs, mount it, write data, read it back, and check it survives a
# remount. Subtests depend on the ones before them, so they always run in this order.
DISK=${SCRATCH_DEV:-/dev/vda}
MNT=/mnt/scratch

ok() { echo "ok $n - $name"; }
not_ok() { echo "not ok $n - $name"; echo "# $*"; }

mkfs() {
	[ -b "$DISK" ] || { not_ok "$DISK is not a block device"; return; }
	out=$(mke2fs -q "$DISK" 2>&1) && ok || not_ok "mke2fs: $out"
}
mount_fs() {
	mkdir -p "$MNT"
	out=$(mount -t ext2 "$DISK" "$MNT" 2>&1) && ok || not_ok "mount: $out"
}
write_read() {
	seq 1 20000 > "$MNT/data" || { not_ok "write failed"; return; }
	sync
	want=$(seq 1 20000 | md5sum | cut -d' ' -f1)
	got=$(md5sum < "$MNT/data" | cut -d' ' -f1)
	[ "$got" = "$want" ] && ok || not_ok "read back md5 $got, wrote $want"
}
remount() {
	umount "$MNT" && mount -t ext2 "$DISK" "$MNT" || { not_ok "remount failed"; return; }
	got=$(tail -n 1 "$MNT/data" 2>/dev/null)
	[ "$got" = 20000 ] && ok || not_ok "after remount the last line is '$got'"
}
unmount() {
	out=$(umount "$MNT" 2>&1) && ok || not_ok "umount: $out"
}

ALL="mkfs mount write-read remount unmount"
if [ "${1:-}" = "--list" ]; then
	for t in $ALL; do echo "$t"; done
	exit 0
fi
[ $# -gt 0 ] || set -- $ALL
echo "TAP version 13"
echo "1..$#"
n=0
for name in "$@"; do
	n=$((n + 1))
	case "$name" in
	mkfs) mkfs ;;
	mount) mount_fs ;;
	write-read) write_read ;;
	remount) remount ;;
	unmount) unmount ;;
	*) echo "not ok $n - $name # no such subtest" ;;
	esac
done
