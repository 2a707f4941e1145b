#!/usr/bin/env bash
# Keep the watch service's spec checkout on its branch: kernel-reconciler-specs.service runs this
# before `reconciler watch` starts and every fetchInterval after (module.nix wraps it with
# writeShellApplication, which runs shellcheck). `reconciler watch` reacts to the changed files.
#
# usage: fetch-specs.sh URL BRANCH CHECKOUT
#
# A missing checkout is made in place (git init, fetch, checkout) rather than cloned beside it:
# the service may write only inside its own directories, and an interrupted first fetch is just
# resumed by the next run. An existing checkout is fetched and fast-forwarded. When the remote
# cannot be reached, an existing checkout is left as it is, with a warning, and the next run
# tries again. A checkout that cannot fast-forward (commits made in it, or a force-pushed
# branch) fails the run with a message, and the watcher goes on with the checkout as it is:
# which side wins is a human's call.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 URL BRANCH CHECKOUT" >&2
  exit 64
fi
url=$1
branch=$2
checkout=$3
tracking="refs/remotes/origin/$branch"

in_checkout() { git -C "$checkout" "$@"; }
has_commit() { in_checkout rev-parse --quiet --verify HEAD >/dev/null; }

if [ ! -e "$checkout/.git" ]; then
  if [ -e "$checkout" ] && [ -n "$(ls -A -- "$checkout")" ]; then
    echo "error: $checkout is not empty and not a git checkout; move it away or set services.kernel-reconciler.checkoutPath to another directory" >&2
    exit 1
  fi
  mkdir -p -- "$checkout"
  git init --quiet --initial-branch="$branch" -- "$checkout"
  in_checkout remote add origin "$url"
fi

in_checkout remote set-url origin "$url"
if ! in_checkout fetch --quiet origin "+refs/heads/$branch:$tracking"; then
  if has_commit; then
    echo "warning: cannot fetch branch $branch of $url; keeping the checkout as it is ($(in_checkout rev-parse --short HEAD))" >&2
    exit 0
  fi
  echo "error: cannot fetch branch $branch of $url and there is no checkout yet; check specRepoUrl, specBranch, the network and the key git uses" >&2
  exit 1
fi

current=$(in_checkout symbolic-ref --quiet --short HEAD || true)
if ! has_commit; then
  # First fetch. --force: a checkout interrupted halfway may have left files behind.
  in_checkout checkout --quiet --force -B "$branch" "$tracking"
  in_checkout branch --quiet --set-upstream-to="origin/$branch"
  exit 0
fi

if [ "$current" != "$branch" ]; then
  # specBranch changed: switch, keeping the old branch and refusing to overwrite local edits.
  if in_checkout show-ref --quiet --verify "refs/heads/$branch"; then
    in_checkout checkout --quiet "$branch"
  else
    in_checkout checkout --quiet -b "$branch" --track "origin/$branch"
  fi
fi

if ! in_checkout merge --quiet --ff-only "$tracking"; then
  echo "error: $checkout cannot fast-forward $branch to origin/$branch (it has commits or edits the remote lacks); inspect it with git -C $checkout status and git -C $checkout log origin/$branch..$branch, then reset or push" >&2
  exit 1
fi
