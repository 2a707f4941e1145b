"""ktest dependencies on a worker: `reconciler apply` (local executor) runs a ktest-shaped harness
whose library `require-git`s a dependency. The batch must find the pinned checkout in
`$ktest_deps_dir` and at the older path beside the library, and never clone anything.

The harness is a small real ktest look-alike (bash, `require-git` as in ktest's prelude.sh, a
`build-test-kernel run` that prints ktest's status lines): real processes, real git, no VM.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.ktest_sample import git, import_tree

PRELUDE = """\
# As ktest's tests/prelude.sh: subtests are test_* functions; require-git clones when missing.
: "${ktest_deps_dir:=$HOME/.ktest/deps}"
require-git()
{
    local dir=$(basename "$1"); dir=${dir%%.git}
    [[ $# -ge 2 ]] && dir=$(basename "$2")
    [[ -d $ktest_deps_dir/$dir ]] || git clone "$1" "$ktest_deps_dir/$dir"
}
main()
{
    case $1 in
        list-tests) declare -F | sed -ne '/ test_/ s/.*test_// p' ;;
        *) exit 1 ;;
    esac
}
"""
FSTESTS_LIB = """\
. "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/../prelude.sh"
require-git https://example.invalid/git/xfstests.git xfstests
"""
USES_XFSTESTS = """\
#!/usr/bin/env bash
. "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/fstests.sh"
test_generic_001() { true; }
test_generic_002() { true; }
main "$@"
"""
PLAIN = """\
#!/usr/bin/env bash
. "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/../prelude.sh"
test_mount() { true; }
main "$@"
"""
# `build-test-kernel run -k SRC -o OUT TEST SUBTESTS…`: passes a subtest when the test file's
# dependency is where ktest and its older code look, with the pinned content.
RUNNER = """\
#!/usr/bin/env bash
shift; shift; shift; shift; shift
test=$1; shift
here=$(dirname "$(readlink -e "$0")")
for t in "$@"; do
    if [[ $test == *uses-xfstests* ]]; then
        a=$(cat "$ktest_deps_dir/xfstests/VERSION" 2>/dev/null)
        b=$(cat "$here/tests/fs/xfstests/VERSION" 2>/dev/null)
        [[ $a == pinned && $b == pinned ]] || { echo "========= FAILED $t in 0s"; continue; }
    fi
    echo "========= PASSED $t in 0s"
done
"""


def make_harness(root: Path) -> tuple[Path, Path]:
    ktest = root / "ktest"
    (ktest / "tests" / "fs").mkdir(parents=True)
    files = {
        "tests/prelude.sh": PRELUDE,
        "tests/fs/fstests.sh": FSTESTS_LIB,
        "tests/fs/uses-xfstests.ktest": USES_XFSTESTS,
        "tests/fs/plain.ktest": PLAIN,
        "build-test-kernel": RUNNER,
    }
    for name, text in files.items():
        (ktest / name).write_text(text)
        if not name.endswith(".sh"):
            (ktest / name).chmod(0o755)
    git(ktest, "init", "-q", "-b", "master")
    git(ktest, "add", "-A")
    git(ktest, "commit", "-q", "-m", "ktest")
    xfstests = root / "xfstests"
    import_tree(None, xfstests, files={"VERSION": "pinned\n"})
    return ktest, xfstests


SPECS = """\
kind: Repo
name: kernel
url: {kernel}
---
kind: Harness
name: ktest
type: ktest
url: {ktest}
ref: master
dependencies:
  - {{name: xfstests, url: {xfstests}, ref: master}}
---
kind: TestGroup
name: fs
harness: ktest
tests: ["tests/fs/*.ktest"]
---
kind: Profile
name: default
---
kind: Branch
name: main
repo: kernel
ref: main
max_commits: 1
test_groups: [fs]
profiles: [default]
"""


def test_apply_provisions_the_pinned_dependency_for_the_files_that_use_it(tmp_path: Path) -> None:
    ktest, xfstests = make_harness(tmp_path)
    kernel = tmp_path / "kernel"
    import_tree(None, kernel, files={"Makefile": "# kernel stand-in\n"})
    git(kernel, "branch", "-m", "main")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "farm.yaml").write_text(SPECS.format(kernel=kernel, ktest=ktest, xfstests=xfstests))
    home = tmp_path / "home"
    home.mkdir()

    def reconciler(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *argv, "--specs", str(specs)],
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        )

    applied = reconciler("apply")
    assert applied.returncode == 0, applied.stderr
    planned = json.loads(reconciler("plan", "--format", "json").stdout)
    assert planned["results"] == {"run": 0, "reused": 3, "reused_from_baselines": 0, "blocked": 0}
    assert planned["blocked"] == []

    commit = git(kernel, "rev-parse", "main").strip()
    shown = json.loads(reconciler("show", commit, "--json").stdout)
    statuses = {(t["test"], t["subtest"]): t["status"] for t in shown["tests"]}
    assert statuses == {
        ("tests/fs/plain.ktest", "mount"): "pass",
        ("tests/fs/uses-xfstests.ktest", "generic_001"): "pass",
        ("tests/fs/uses-xfstests.ktest", "generic_002"): "pass",
    }
    # Nothing was cloned into the user's home; the dependency is in the identity of exactly
    # the file that uses it.
    assert not (home / ".ktest").exists()
    tree = git(xfstests, "rev-parse", "HEAD^{tree}").strip()
    inputs = {
        (t["test"], t["subtest"]): json.loads(reconciler("explain", t["result"], "--json").stdout)[
            "inputs"
        ]
        for t in shown["tests"]
    }
    for (test, _), explained in inputs.items():
        expected = tree if test.endswith("uses-xfstests.ktest") else None
        assert explained.get("harness.dependencies.xfstests") == expected
