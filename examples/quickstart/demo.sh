#!/bin/sh
# The demo `make demo` runs: the whole GitOps cycle on the quickstart project, from scratch.
#   1. a spec repo (git) holding the default spec set, and the quickstart target repo;
#   2. plan -> apply (local executor) -> per-commit summary -> plan again: nothing to do;
#   3. a profile added by a commit to the spec repo -> plan shows only its work -> apply.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
reconciler=${RECONCILER:-$top/.venv/bin/reconciler}
demo=${DEMO_DIR:-$top/.reconciler/demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ reconciler %s\n' "$*"; "$reconciler" "$@"; }

"$here/make-repo.sh" >/dev/null
rm -rf "$demo"
mkdir -p "$demo"
cp -R "$top/specs" "$demo/specs"
# The spec repo lives elsewhere than specs/: point its Repo at the target by absolute path.
sed -i "s|url: ../examples/quickstart/repo.*|url: $here/repo|" "$demo/specs/quickstart.yaml"
git -C "$demo" init -q -b main
git -C "$demo" add specs
git -C "$demo" -c user.name=demo -c user.email=demo@example.org commit -q -m "specs: test the quickstart project"
cd "$demo"

step "Validate and plan the spec repo"
run validate --specs specs
run plan --specs specs

step "Apply: build each commit under each profile and run its tests (local executor)"
run apply --specs specs

step "Plan again: the store holds every result"
run plan --specs specs

step "A commit to the spec repo adds a profile"
cat >> specs/quickstart.yaml <<'YAML'
---
kind: Profile
name: o3
description: Optimised harder; a new build input, so new builds and results.
build_env: {CFLAGS: "-O3"}
YAML
sed -i 's/^profiles: \[default, debug\]$/profiles: [default, debug, o3]/' specs/branches.yaml
git add specs
git -c user.name=demo -c user.email=demo@example.org commit -q -m "specs: test main under -O3 too"
git log --oneline
run plan --specs specs

step "Apply runs only the new profile's work"
run apply --specs specs
run plan --specs specs --detailed-exitcode

step "Watch mode, one pass: status written back to the spec repo's reconciler/status branch"
run watch --specs specs --once --host-id demo-host
git log --oneline reconciler/status
git ls-tree -r --name-only reconciler/status
git show reconciler/status:demo-host/branches/main.md

step "A proposed spec change on a branch: the plan a pull request would show (markdown)"
git checkout -q -b pr/bigger-default
sed -i 's/build_env: {CFLAGS: "-O2"}/build_env: {CFLAGS: "-O2 -fno-inline"}/' specs/quickstart.yaml
git -c user.name=demo -c user.email=demo@example.org commit -q -am "specs: build default without inlining"
run plan --specs specs --base main --head pr/bigger-default --format markdown
git checkout -q main

step "Query results like ci-status: the branch log, then one commit"
run log main --specs specs
run show 8bb4635 --specs specs

step "Compare the breaking commit with the v1.0 baseline (a gate: exit 1 on a regression)"
status=0
run compare baseline:v1.0 main@8bb4635 --profile default --specs specs || status=$?
echo "(compare exited $status: 1 means a regression, as expected here)"
[ "$status" = 1 ]

step "The dashboard"
run dashboard --specs specs --out "$demo/dashboard"
echo "dashboard: $demo/dashboard/index.html"
