#!/bin/sh
# What the kernel example (and its end-to-end test) needs from Debian: the Linux tree, a
# compiler's kernel-build companions, QEMU without KVM, a static busybox for the initramfs, and
# ccache (optional but makes rebuilds cheap). Installs what is missing when run as root with
# apt-get; otherwise prints the command and exits 1. Installs nothing when all is present.
set -eu
packages="linux-source-6.1 qemu-system-x86 busybox-static ccache flex bison bc libelf-dev libssl-dev make gcc"
missing=""
for package in $packages; do
	dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
	echo "the kernel example needs:$missing" >&2
	echo "install them with: sudo apt-get install$missing" >&2
	exit 1
fi
