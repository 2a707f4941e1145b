"""Purpose-built farms for end-to-end tests: a real git repo of TAP scripts that take a little
time per subtest (so a kill or a dropped connection lands mid-batch), and its spec set."""

from __future__ import annotations

import subprocess
from pathlib import Path

COMMITS = 3
SUBTESTS = 8

TEST_SCRIPT = """\
#!/bin/sh
# {n} subtests of 40 ms; every subtest named fail_* fails.
ALL="{names}"
if [ "$1" = --list ]; then for t in $ALL; do echo "$t"; done; exit 0; fi
[ $# -gt 0 ] || set -- $ALL
echo "TAP version 13"
echo "1..$#"
i=0
for t in "$@"; do
    i=$((i + 1))
    sleep 0.04
    case "$t" in fail_*) echo "not ok $i - $t" ;; *) echo "ok $i - $t" ;; esac
done
"""

SPECS = """\
kind: Repo
name: slow
url: {repo}
---
kind: Harness
name: tap
type: command
build: sh build.sh
list: sh {{test}} --list
run: sh {{test}} {{subtests}}
---
kind: TestGroup
name: all
harness: tap
tests: ["tests/*.t"]
timeout: 30
---
kind: Profile
name: default
---
kind: Profile
name: other
build_env: {{CFLAGS: "-O1"}}
---
kind: Branch
name: main
repo: slow
ref: main
max_commits: {commits}
test_groups: [all]
profiles: [default, other]
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
    )


def make_slow_farm(farm: Path, *, extra_specs: str = "", commits: int = COMMITS) -> Path:
    repo = farm / "repo"
    (repo / "tests").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for commit in range(commits):
        (repo / "build.sh").write_text(f"sleep 0.1\necho built {commit} > built.txt\n")
        for script in ("a", "b"):
            names = [f"{'fail' if i == 3 else 'check'}_{script}{i}" for i in range(SUBTESTS)]
            (repo / "tests" / f"{script}.t").write_text(
                TEST_SCRIPT.format(n=SUBTESTS, names=" ".join(names))
            )
        (repo / "VERSION").write_text(f"{commit}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"commit {commit}")
    (farm / "specs").mkdir()
    (farm / "specs/farm.yaml").write_text(SPECS.format(repo=repo, commits=commits) + extra_specs)
    return farm


HOSTILE = "$(touch${IFS}%s);`touch${IFS}%s`;'\"x"
"""Shell metacharacters, quotes and command substitutions that would create the sentinel file
if any layer ever let them reach a shell as code."""


def make_hostile_farm(farm: Path, *, sentinel: str, extra_specs: str = "") -> tuple[Path, str]:
    """A repo whose branch, test file and subtest names are full of shell syntax.

    Returns the farm and the hostile branch name. Git refuses spaces in refs, so the branch
    uses `${IFS}`; test files and subtests also get spaces. `sentinel` is a bare file name (a
    test file's name cannot hold a path): the caller looks for it wherever commands run.
    """
    hostile = HOSTILE % (sentinel, sentinel)
    repo = farm / "repo"
    (repo / "tests").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    subtests = [f"a b; {hostile}", "plain", f'it\'s {hostile} "quoted"']
    listing = "".join(f"printf '%s\\n' {_sh_quote(name)}\n" for name in subtests)
    (repo / "tests" / f"odd name {hostile}.t").write_text(
        '#!/bin/sh\nif [ "$1" = --list ]; then\n' + listing + "exit 0\nfi\n"
        'echo "TAP version 13"\necho "1..$(($# ))"\ni=0\n'
        'for t in "$@"; do i=$((i + 1)); echo "ok $i - $t"; done\n'
    )
    (repo / "build.sh").write_text("echo built > built.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hostile names")
    branch = f"feature/{hostile.replace(' ', '')}"
    git(repo, "branch", branch)
    (farm / "specs").mkdir()
    (farm / "specs/farm.yaml").write_text(
        SPECS.format(repo=repo, commits=1).replace("ref: main", f"ref: {_yaml_quote(branch)}")
        + extra_specs
    )
    return farm, branch


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _yaml_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
