"""The plan use case over real git repositories: a source repo and a harness pinned in its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.app.planning import Planner
from reconciler.core.planner import plan
from reconciler.model.desired import StoreSnapshot, UnitSummary
from reconciler.model.plan import Reason

ENV = {
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV
    ).stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


LIST_SCRIPT = 'if [ "$1" = --list ]; then printf "%s\\n" {names}; fi\n'


def make_farm(tmp_path: Path) -> tuple[Path, Path, Path]:
    source, suite, specs = tmp_path / "linux", tmp_path / "suite", tmp_path / "specs"
    for repo in (source, suite):
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
    commit_files(source, {"init/main.c": "int main;\n"}, "first")
    commit_files(source, {"init/main.c": "int main(void);\n"}, "second")
    commit_files(
        suite,
        {
            "tests/fs/a.t": LIST_SCRIPT.format(names="one two"),
            "tests/fs/b.t": LIST_SCRIPT.format(names="three"),
            "README": "a test suite\n",
        },
        "suite",
    )
    specs.mkdir()
    (specs / "farm.yaml").write_text(
        f"""\
kind: Repo
name: linux
url: {source}
---
kind: Harness
name: suite
type: command
url: ../suite
ref: main
list: sh {{test}} --list
run: sh {{test}} {{subtests}}
---
kind: TestGroup
name: fs
harness: suite
tests: ["tests/fs/*.t"]
---
kind: Profile
name: default
---
kind: Branch
name: main
repo: linux
ref: main
max_commits: 5
test_groups: [fs]
profiles: [default]
"""
    )
    return source, suite, specs


def test_tests_come_from_the_harness_repo_at_its_pinned_revision(tmp_path: Path) -> None:
    _source, suite, specs = make_farm(tmp_path)
    planner = Planner(git=GitResolver(tmp_path / "cache"), cache=MemoryEnumerationCache())
    desired = planner.desired(load_specs(specs))
    assert [(s.commit.subject, [(u.test, u.subtests) for u in s.units]) for s in desired.slots] == [
        ("second", [("tests/fs/a.t", ("one", "two")), ("tests/fs/b.t", ("three",))]),
        ("first", [("tests/fs/a.t", ("one", "two")), ("tests/fs/b.t", ("three",))]),
    ]
    harness_tree = git(suite, "rev-parse", "main^{tree}")
    assert {u.preimage["harness"]["revision"] for s in desired.slots for u in s.units} == {
        harness_tree
    }


def test_a_new_harness_revision_replans_every_result(tmp_path: Path) -> None:
    _source, suite, specs = make_farm(tmp_path)
    spec_set = load_specs(specs)
    planner = Planner(git=GitResolver(tmp_path / "cache"), cache=MemoryEnumerationCache())
    before = planner.desired(spec_set)
    everything = StoreSnapshot(
        units={u.unit: UnitSummary(len(u.subtests)) for s in before.slots for u in s.units}
    )
    assert not plan(before, everything).has_work

    commit_files(suite, {"README": "the suite changed\n"}, "harness change")
    after = Planner(git=GitResolver(tmp_path / "cache"), cache=MemoryEnumerationCache()).desired(
        load_specs(specs)
    )
    replanned = plan(after, everything)
    assert {item.reason for item in replanned.items} == {Reason.MISSING}
    assert replanned.totals.results_run == 2 * 3
