#!/bin/sh
# UTS namespace tests, run by busybox sh inside the VM, printing TAP. `--list` prints the
# subtest names; with names as arguments only those run (the reconciler batches subtests).
# hostname-roundtrip and hostname-long see the sethostname() bug of the example branch.

ok() { echo "ok $n - $name"; }
not_ok() { echo "not ok $n - $name"; echo "# $*"; }

sysname() {
	got=$(uname -s)
	[ "$got" = Linux ] && ok || not_ok "uname -s said '$got'"
}
release() {
	got=$(uname -r)
	case "$got" in 6.1.*) ok ;; *) not_ok "uname -r said '$got', expected 6.1.*" ;; esac
}
hostname_roundtrip() {
	want=reconciler-vm
	hostname "$want" || { not_ok "sethostname($want) failed"; return; }
	got=$(hostname)
	[ "$got" = "$want" ] && ok || not_ok "set '$want', read back '$got'"
}
hostname_long() {
	# 64 characters: __NEW_UTS_LEN, the longest name the kernel accepts.
	want=$(printf 'h%.0s' $(seq 64))
	hostname "$want" || { not_ok "sethostname of 64 characters failed"; return; }
	got=$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)
	[ "$got" = "$want" ] && ok || not_ok "set ${#want} characters, read back ${#got}: '$got'"
}

ALL="sysname release hostname-roundtrip hostname-long"
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
	case " $ALL " in
	*" $name "*) "$(echo "$name" | tr - _)" ;;
	*) echo "not ok $n - $name # no such subtest" ;;
	esac
done
