"""`plan --base/--head` on the quickstart farm with its specs committed to a real git repo: real
git, real SQLite store, real files; diffs and rendered output asserted as values."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from reconciler.app.plan_diff import run_plan_diff
from reconciler.app.planning import Workspace
from reconciler.app.spec_revisions import specs_at_revision
from reconciler.model.errors import ExitCode, ReconcilerError, SpecErrors

from .test_cli import store_results

O3_PROFILE = """---
kind: Profile
name: o3
build_env: {CFLAGS: "-O3"}
"""


def git(farm: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=Spec Author",
            "-c",
            "user.email=author@example.org",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=farm,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_specs(farm: Path, message: str) -> None:
    git(farm, "add", "specs")
    git(farm, "commit", "-q", "-m", message)


def edit(farm: Path, file: str, old: str, new: str) -> None:
    path = farm / "specs" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def spec_repo(quickstart: Path) -> Path:
    """The quickstart farm as a spec repo: specs/ committed, everything of it stored."""
    git(quickstart, "init", "-q", "-b", "main")
    commit_specs(quickstart, "quickstart specs")
    store_results(quickstart)
    return quickstart


def add_o3(farm: Path) -> None:
    (farm / "specs/quickstart.yaml").write_text(
        (farm / "specs/quickstart.yaml").read_text() + O3_PROFILE
    )
    edit(farm, "branches.yaml", "profiles: [default, debug]", "profiles: [default, debug, o3]")
    commit_specs(farm, "test main with -O3 too")


def diff_json(farm: Path, base: str = "HEAD~1", head: str = "HEAD") -> dict[str, Any]:
    out, _ = run_plan_diff(
        Workspace.for_specs(farm / "specs", environ={}),
        base=base,
        head=head,
        fmt="json",
        fetch=False,
    )
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def temp_entries() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if "reconciler-specs" in name}


def test_adding_a_profile_adds_its_work_and_reuses_the_rest(spec_repo: Path) -> None:
    add_o3(spec_repo)
    # The working tree does not matter: revisions are read from git.
    (spec_repo / "specs/branches.yaml").write_text("kind: Nonsense\n")
    before = temp_entries()
    diff = diff_json(spec_repo)
    assert temp_entries() == before, "materialised revisions are removed"
    # main: 6 commits under o3, 52 subtests; the v1.0 baseline does not ask for o3.
    assert diff["builds"] == {"added": 6, "added_to_run": 6, "removed": 0, "run": 6, "reused": 12}
    assert diff["results"] == {
        "added": 52,
        "added_to_run": 52,
        "removed": 0,
        "run": 52,
        "reused": 104,
    }
    # 52 subtests at their stored mean of 0.5 s, and 6 builds at the default 600 s.
    assert diff["estimated_machine_hours"] == round((52 * 0.5 + 6 * 600) / 3600, 2) == 1.01
    rows = {(r["branch"], r["profile"]): r for r in diff["rows"]}
    assert sorted(rows) == [
        ("main", "debug"),
        ("main", "default"),
        ("main", "o3"),
        ("v1.0", "debug"),
        ("v1.0", "default"),
    ]
    assert {key: r["results_added_to_run"] for key, r in rows.items()} == {
        ("main", "debug"): 0,
        ("main", "default"): 0,
        ("main", "o3"): 52,
        ("v1.0", "debug"): 0,
        ("v1.0", "default"): 0,
    }
    changes = diff["changes"]
    assert isinstance(changes, list)
    assert len(changes) == 12  # 6 commits x (tests/arith.t, tests/errors.t)
    assert {(c["profile"], c["reason"]) for c in changes} == {("o3", "new profile")}
    for change in changes:
        assert change["nearest"]["source"] == "stored"
        assert change["nearest"]["commit"] == change["commit"]
        assert change["differences"] == [
            {
                "input": "build.env.CFLAGS",
                "change": "build environment changed",
                "base": {"debug": "-O0 -g", "default": "-O2"}[change["nearest"]["profile"]],
                "head": "-O3",
            }
        ]


def test_text_and_markdown_of_the_o3_change(spec_repo: Path) -> None:
    add_o3(spec_repo)
    workspace = Workspace.for_specs(spec_repo / "specs", environ={})
    text, _ = run_plan_diff(workspace, base="HEAD~1", head="HEAD", fmt="text", fetch=False)
    summary = "Plan: +6 builds, +52 results to run (~1.01 machine-hours), 104 reused, 0 removed"
    assert text.splitlines()[0] == summary
    assert "  new profile: 12 test files, 52 subtests" in text.splitlines()
    markdown, _ = run_plan_diff(workspace, base="HEAD~1", head="HEAD", fmt="markdown", fetch=False)
    lines = markdown.splitlines()
    assert lines[0] == f"**{summary}**"
    assert "<details><summary>Per branch and profile</summary>" in lines
    assert "| main | o3 | 6 | 0 | 52 | 52 | 0 | 0 | 1.01 |" in lines
    assert (
        "<details><summary>Why not reused: 12 test files to run (12 new profile)</summary>" in lines
    )


def test_a_changed_profile_names_the_changed_input(spec_repo: Path) -> None:
    add_o3(spec_repo)
    edit(spec_repo, "quickstart.yaml", 'build_env: {CFLAGS: "-O2"}', 'build_env: {CFLAGS: "-Os"}')
    commit_specs(spec_repo, "default: optimise for size")
    diff = diff_json(spec_repo)
    # default's 6 builds and 52 results are replaced; o3 is still to run, as it was at base.
    assert diff["builds"] == {"added": 6, "added_to_run": 6, "removed": 6, "run": 12, "reused": 6}
    assert diff["results"] == {
        "added": 52,
        "added_to_run": 52,
        "removed": 52,
        "run": 104,
        "reused": 52,
    }
    changes = diff["changes"]
    assert isinstance(changes, list)
    by_profile = {
        profile: {(c["reason"], str(c["differences"])) for c in changes if c["profile"] == profile}
        for profile in ("default", "o3")
    }
    difference = {
        "input": "build.env.CFLAGS",
        "change": "build environment changed",
        "base": "-O2",
        "head": "-Os",
    }
    assert by_profile == {
        "default": {("build environment changed", str([difference]))},
        "o3": {("already planned at base", "[]")},
    }
    # main's 6 commits and the v1.0 baseline, two test files each.
    assert sum(1 for c in changes if c["profile"] == "default") == 14


def test_removing_a_branch_shows_the_removed_work(spec_repo: Path) -> None:
    git(spec_repo, "rm", "-q", "specs/branches.yaml")
    git(spec_repo, "commit", "-q", "-m", "stop testing main")
    diff = diff_json(spec_repo)
    # Only the v1.0 baseline is left: main's other 5 commits under both profiles go.
    assert diff["builds"] == {"added": 0, "added_to_run": 0, "removed": 10, "run": 0, "reused": 2}
    assert diff["results"] == {"added": 0, "added_to_run": 0, "removed": 90, "run": 0, "reused": 14}
    assert diff["changes"] == []
    text, _ = run_plan_diff(
        Workspace.for_specs(spec_repo / "specs", environ={}),
        base="HEAD~1",
        head="HEAD",
        fmt="text",
        fetch=False,
    )
    assert text.splitlines()[0] == (
        "Plan: +0 builds, +0 results to run (~0.00 machine-hours), 14 reused, 90 removed "
        "(10 builds)"
    )


def test_a_bad_revision_is_a_user_error_naming_it(spec_repo: Path) -> None:
    before = temp_entries()
    with pytest.raises(ReconcilerError) as raised:
        diff_json(spec_repo, base="no-such-rev")
    assert raised.value.exit_code is ExitCode.USER_ERROR
    assert "'no-such-rev'" in str(raised.value)
    assert temp_entries() == before


def test_spec_errors_at_a_revision_are_located_in_it(spec_repo: Path) -> None:
    edit(spec_repo, "branches.yaml", "profiles: [default, debug]", "profiles: [default, nosuch]")
    commit_specs(spec_repo, "a typo")
    before = temp_entries()
    with pytest.raises(SpecErrors) as raised:
        diff_json(spec_repo, base="main~1", head="main")
    assert raised.value.exit_code == 1
    lines = (spec_repo / "specs/branches.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "nosuch" in text)
    column = lines[line - 1].index("nosuch") + 1
    (error,) = raised.value.errors
    assert str(error).startswith(f"main:specs/branches.yaml:{line}:{column}: ")
    assert "nosuch" in str(error)
    assert temp_entries() == before


def test_relative_paths_resolve_as_in_the_checkout(spec_repo: Path) -> None:
    expunges = spec_repo / "expunges/calc.txt"
    expunges.parent.mkdir()
    expunges.write_text("tests/arith.t # committed\n")
    edit(
        spec_repo, "quickstart.yaml", "timeout: 60", "timeout: 60\nexpunges: [../expunges/calc.txt]"
    )
    git(spec_repo, "add", "expunges")
    commit_specs(spec_repo, "expunge arith")
    expunges.write_text("tests/errors.t # not committed\n")
    with specs_at_revision(spec_repo / "specs", revision="HEAD") as specs:
        # A repository beside the checkout's specs/ is read in place...
        assert specs.repos["quickstart"].url == str(spec_repo / "examples/quickstart/repo")
        # ...an expunge list, content of the spec repo, as it was at the revision.
        (path,) = specs.test_groups["calc"].expunges
        assert Path(path).read_text() == "tests/arith.t # committed\n"
        lines = (spec_repo / "specs/quickstart.yaml").read_text().splitlines()
        line = lines.index("kind: Repo") + 1
        assert (
            str(specs.locations[("Repo", "quickstart")]) == f"HEAD:specs/quickstart.yaml:{line}:1"
        )
        materialised = specs.spec_dir
    assert not materialised.exists()


def test_a_spec_directory_outside_git_is_a_user_error(quickstart: Path) -> None:
    with pytest.raises(ReconcilerError) as raised:
        diff_json(quickstart, base="main", head="HEAD")
    assert raised.value.exit_code == 1
    assert "not inside a git repository" in str(raised.value)
