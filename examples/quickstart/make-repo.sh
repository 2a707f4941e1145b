#!/bin/sh
# Build the quickstart target repository: base/ as the first commit, then the patch series
# applied with `git am`, tagging where `series` says. Dates and identities are fixed, so the
# commits (and their trees) are the same on every machine. Does nothing if the repository
# exists; builds in a temporary directory and renames, so an interrupted run leaves nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/repo}
[ -d "$dest/.git" ] && exit 0

mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "${dest}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export GIT_AUTHOR_NAME="Ada Dev" GIT_AUTHOR_EMAIL="ada@example.org"
export GIT_COMMITTER_NAME="Ada Dev" GIT_COMMITTER_EMAIL="ada@example.org"
export GIT_AUTHOR_DATE="2026-01-05T10:00:00Z" GIT_COMMITTER_DATE="2026-01-05T10:00:00Z"
git="git -C $tmp -c init.defaultBranch=main -c commit.gpgsign=false -c tag.gpgsign=false -c core.hooksPath=/dev/null"

cp -R "$here/base/." "$tmp/"
$git init -q
$git add -A
$git commit -q -m "calc: an RPN calculator with addition and subtraction" \
	-m "The quickstart target of kernel-reconciler: a tiny C program with TAP tests."
grep -v '^#' "$here/series" | while read -r patch tag; do
	[ -n "$patch" ] || continue
	$git am -q --committer-date-is-author-date "$here/patches/$patch"
	[ -z "${tag:-}" ] || $git tag -a -m "$tag" "$tag"
done
mv "$tmp" "$dest"
trap - EXIT
echo "created $dest ($(git -C "$dest" rev-list --count main) commits on main, tags: $(git -C "$dest" tag | tr '\n' ' '))"
