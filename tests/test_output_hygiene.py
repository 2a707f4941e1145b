"""Strings others wrote reach a terminal, a plan or a PR comment as text, never as control
sequences or markup (issue 11, security 4); hints quote every user string they show.

A test file's path comes from the repository under test and a commit subject from anyone who
pushes: an ESC there once rewrote the terminal title from `plan` and `compare`, and a newline
forged a line of the plan.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from reconciler.adapters.git_mirror import RepositoryLocator
from reconciler.cli.main import main
from reconciler.model.errors import GitUnreachableError
from reconciler.model.specs import Repo
from tests.farms import git

HOSTILE = "e\x1b]0;pwned\x07\x1b[2J\nforged line\t\u202eeman"
SHOWN = "e\\x1b]0;pwned\\x07\\x1b[2J\\x0aforged line\\x09\\u202eeman"


@pytest.fixture
def farm(quickstart: Path) -> Path:
    """The quickstart farm with a test file, and a commit, whose names carry control codes."""
    repo = quickstart / "examples" / "quickstart" / "repo"
    shutil.copy(repo / "tests" / "arith.t", repo / "tests" / f"{HOSTILE}.t")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"calc: {HOSTILE}")
    return quickstart


def run(farm: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main([*argv, "--specs", str(farm / "specs")])
    out, err = capsys.readouterr()
    assert err == "" or "\x1b" not in err
    return code, out


def _clean(text: str) -> None:
    assert not any(char in text for char in "\x1b\x07\u202e"), repr(text)


def test_plan_text_and_markdown_show_names_as_text(
    farm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run(farm, capsys, "plan")
    assert code == 0
    _clean(text)
    assert f"tests/{SHOWN}.t (" in text
    assert not any(line.startswith("forged line") for line in text.splitlines())
    code, markdown = run(farm, capsys, "plan", "--format", "markdown")
    _clean(markdown)
    assert "forged line" in markdown and "\nforged line" not in markdown


def test_compare_shows_subjects_and_names_as_text(
    farm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("text", "markdown"):
        code, out = run(farm, capsys, "compare", "baseline:v1.0", "main", "--format", fmt)
        assert code == 2  # the new commit has no results yet: incomplete
        _clean(out)
        assert "\nforged line" not in out
        # git joins a subject's lines with a space; what is left is shown, escaped.
        assert "calc: e\\x1b]0;pwned\\x07\\x1b[2J forged line\\x09\\u202eeman" in out


def test_hints_quote_the_user_strings_they_show(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    url = f"{tmp_path}/$(touch {marker})"
    locator = RepositoryLocator(cache_dir=tmp_path / "cache", fetch=False, timeout=10)
    with pytest.raises(GitUnreachableError) as caught:
        locator.git_dir(repo=Repo(kind="Repo", name="x", url=url), asked_by="Repo 'x'")
    assert caught.value.hint is not None
    assert caught.value.hint.endswith(f": git -C {shlex.quote(url)} rev-parse")
    assert not marker.exists()
