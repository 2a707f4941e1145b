"""Fixtures shared across test modules: the quickstart farm (default specs + target repo)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def quickstart_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default spec set beside a freshly built quickstart repository, built once."""
    farm = tmp_path_factory.mktemp("quickstart-template")
    shutil.copytree(ROOT / "specs", farm / "specs")
    subprocess.run(
        [str(ROOT / "examples/quickstart/make-repo.sh"), str(farm / "examples/quickstart/repo")],
        check=True,
        capture_output=True,
    )
    return farm


@pytest.fixture
def quickstart(quickstart_template: Path, tmp_path: Path) -> Path:
    """A private copy of the quickstart farm: tests may write its store and change its repo."""
    farm = tmp_path / "farm"
    shutil.copytree(quickstart_template, farm, symlinks=True)
    return farm
