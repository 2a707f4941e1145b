"""Usage errors keep the exit-code contract (issue 11, item 12): they are user errors (1), never
argparse's 2, which this CLI means as "work pending" or "results incomplete"."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reconciler.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [
        ["plna"],
        ["plan", "--bogus"],
        ["compare", "--profle", "default", "a", "b"],
        ["store"],
        ["plan", "--format", "yaml"],
    ],
)
def test_a_usage_error_exits_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "error:" in err and err.startswith("usage: reconciler")


def test_help_and_version_still_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert main(["--version"]) == 0
    assert capsys.readouterr().out


def test_the_console_script_exits_1_on_a_typo() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "compare", "--profle", "x", "a", "b"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "reconciler: error: unrecognized arguments: --profle b"
