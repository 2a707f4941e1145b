#!/bin/sh
# The demo `make demo-kernel` runs: a real Linux tree built, booted under QEMU and tested.
#   1. Debian's linux-source-6.1 as a git repo: v6.1 (the baseline) and branch hostname-work,
#      whose second patch breaks sethostname() and whose third fixes it;
#   2. a spec repo with the branch, the baseline, two profiles and three in-VM test groups;
#   3. plan -> apply (kbuild in a reused object dir, QEMU boots) -> log -> compare -> dashboard.
# The store and the object dirs persist in $DEMO_DIR, so a second run builds and boots nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
reconciler=${RECONCILER:-$top/.venv/bin/reconciler}
demo=${DEMO_DIR:-$top/.reconciler/kernel-demo}
repos=${KERNEL_REPOS:-$here/repos}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ reconciler %s\n' "$*"; "$reconciler" "$@"; }

step "Prerequisites (Debian packages)"
"$here/install-deps.sh"
echo "linux-source-6.1, qemu-system-x86, busybox-static, ccache and the kernel build tools are installed"

step "The kernel repository: linux-source-6.1 imported and tagged v6.1, a patch series on top"
"$here/make-repos.sh" "$repos"
git --git-dir="$repos/linux.git" log --oneline v6.1~0 -1
git --git-dir="$repos/linux.git" log --oneline v6.1..hostname-work

if [ ! -d "$demo/specs" ]; then
	mkdir -p "$demo"
	cp -R "$here/specs" "$demo/specs"
	# The spec repo lives elsewhere: point its Repo and Harnesses at the repos by absolute path.
	sed -i "s|url: ../repos/|url: $repos/|" "$demo/specs/kernel.yaml"
	git -C "$demo" init -q -b main
	git -C "$demo" add specs
	git -C "$demo" -c user.name=demo -c user.email=demo@example.org commit -q \
		-m "specs: test hostname-work against v6.1 in QEMU"
fi
cd "$demo"

step "Plan: every commit under each profile, and the baseline"
run plan --specs specs

step "Apply: build each kernel (kbuild, object dir reused per profile), boot it under QEMU, test"
run apply --specs specs

step "The branch log"
run log hostname-work --specs specs

broken=$(git --git-dir="$repos/linux.git" rev-parse --short=12 hostname-work~1)
step "Compare the breaking commit with the v6.1 baseline (a gate: exit 1 on a regression)"
status=0
run compare baseline:v6.1 "hostname-work@$broken" --profile tiny --specs specs || status=$?
echo "(compare exited $status: 1 means a regression, as expected for $broken)"
[ "$status" = 1 ]

step "Compare the fix (the branch head) with the baseline: nothing regressed"
run compare baseline:v6.1 hostname-work --profile tiny --specs specs

step "Nothing left to do: a second reconcile would build nothing and boot nothing"
run plan --specs specs --detailed-exitcode

step "The dashboard"
run dashboard --specs specs --out "$demo/dashboard" >/dev/null
echo "dashboard: $demo/dashboard/index.html"
