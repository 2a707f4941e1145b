#!/bin/sh
# Build the kernel example's two repositories under DEST (default: examples/kernel/repos):
#   linux.git     Debian's linux-source-6.1 imported as one commit tagged v6.1 (the baseline),
#                 and branch hostname-work: that commit plus the patches listed in `series`;
#   vm-tests.git  the in-VM tests of tests/ (TAP and ktest-style), on branch main.
# Both are bare. Identities and dates are fixed, so commit ids are the same on every machine
# with the same linux-source-6.1 package. Does nothing for a repository that exists; builds in
# a temporary directory and renames, so an interrupted run leaves nothing half-made.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/repos}
tarball=${LINUX_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

identity() { # name email date
	export GIT_AUTHOR_NAME="$1" GIT_AUTHOR_EMAIL="$2" GIT_AUTHOR_DATE="$3"
	export GIT_COMMITTER_NAME="$1" GIT_COMMITTER_EMAIL="$2" GIT_COMMITTER_DATE="$3"
}
gitc() { git -c commit.gpgsign=false -c tag.gpgsign=false -c core.hooksPath=/dev/null "$@"; }

if [ ! -d "$dest/vm-tests.git" ]; then
	tmp=$(mktemp -d "$dest/vm-tests.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	identity "Ada Dev" ada@example.org 2026-02-01T09:00:00Z
	gitc init -q -b main "$tmp/work"
	cp "$here/tests/"* "$tmp/work/"
	gitc -C "$tmp/work" add -A
	gitc -C "$tmp/work" commit -q -m "In-VM tests: uts, ext2 on a scratch disk, boot smoke checks"
	gitc clone -q --bare "$tmp/work" "$tmp/vm-tests.git"
	mv "$tmp/vm-tests.git" "$dest/vm-tests.git"
	rm -rf "$tmp"
	trap - EXIT
	echo "created $dest/vm-tests.git"
fi

if [ ! -d "$dest/linux.git" ]; then
	if [ ! -f "$tarball" ]; then
		echo "make-repos.sh: $tarball is missing: apt-get install linux-source-6.1" >&2
		exit 1
	fi
	tmp=$(mktemp -d "$dest/linux.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	mkdir "$tmp/tree"
	tar -xf "$tarball" -C "$tmp/tree" --strip-components=1
	# A git dir whose work tree is the extracted tarball; `add -f` because Debian's top-level
	# .gitignore ignores everything but debian/ (the tarball holds no generated files).
	g="gitc --git-dir=$tmp/linux.git --work-tree=$tmp/tree"
	identity "Linux import" import@example.invalid 2022-12-11T14:15:00+00:00
	$g init -q -b master
	$g add -A -f
	$g commit -q -m "Linux 6.1 (Debian linux-source-6.1)"
	$g tag v6.1
	$g checkout -q -b hostname-work
	grep -v '^#' "$here/series" | while read -r patch; do
		[ -n "$patch" ] || continue
		$g am -q --committer-date-is-author-date "$here/patches/$patch"
	done
	$g checkout -q master
	# One pack instead of 78,000 loose objects: a worker's first fetch of the tree takes
	# seconds instead of a minute and a half. No deltas (--window=0): packing stays quick.
	$g repack -adq --window=0
	$g config --unset core.worktree || true
	$g config core.bare true
	rm -f "$tmp/linux.git/index"
	mv "$tmp/linux.git" "$dest/linux.git"
	rm -rf "$tmp"
	trap - EXIT
	echo "created $dest/linux.git: $(git --git-dir="$dest/linux.git" log --oneline v6.1..hostname-work | wc -l) commits on hostname-work over v6.1"
fi
