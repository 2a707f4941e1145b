"""The locked dependency set and the quiet console script (requirements/lock.py, cli/entry.py).

A fresh machine installs exactly the locks; a lock that no longer matches pyproject.toml stops
`make` with one line; the `reconciler` command prints nothing from another library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def _pins(lock: Path) -> dict[str, str]:
    return {name.lower(): version for name, version in PIN.findall(lock.read_text())}


def _lock_module() -> object:
    sys.path.insert(0, str(LOCKS))
    try:
        import lock  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(LOCKS))
    return lock


def test_locks_match_pyproject() -> None:
    result = subprocess.run(
        [sys.executable, str(LOCKS / "lock.py"), "check"], capture_output=True, text=True
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_every_pin_has_a_hash_and_the_locks_agree() -> None:
    run, dev = _pins(LOCKS / "run.lock"), _pins(LOCKS / "dev.lock")
    for lock in ("run.lock", "dev.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (LOCKS / lock).read_text())
        pinned = [entry for entry in entries if PIN.match(entry)]
        assert pinned and all("--hash=sha256:" in entry for entry in pinned), lock
    # dev.lock is resolved under run.lock's constraints: what both hold, they hold alike.
    assert {name: dev[name] for name in run} == run
    # The package itself never appears in its own lock; GitPython only as the bench's.
    assert "kernel-reconciler" not in dev
    assert "gitpython" not in run and "gitpython" in dev
    assert {"setuptools", "uv", "pytest", "cryptography"} <= set(dev)


def test_a_changed_dependency_makes_the_lock_stale(tmp_path: Path) -> None:
    lock = _lock_module()
    edited = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text()
    edited.write_text(text.replace('"rich>=13"', '"rich>=14"'))
    assert lock.inputs_hash(edited) != lock.inputs_hash(ROOT / "pyproject.toml")  # type: ignore[attr-defined]
    # Settings that do not feed a resolution leave the lock valid.
    unrelated = tmp_path / "unrelated.toml"
    unrelated.write_text(text.replace("line-length = 100", "line-length = 99"))
    assert lock.inputs_hash(unrelated) == lock.inputs_hash(ROOT / "pyproject.toml")  # type: ignore[attr-defined]


@pytest.mark.slow
def test_make_stops_with_one_line_on_a_stale_lock(tmp_path: Path) -> None:
    """The real Makefile on a copy of the project whose pyproject.toml gained a dependency."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(LOCKS, project / "requirements", ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"rich>=13",', '"rich>=13",\n    "six",'))
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    result = subprocess.run(
        ["make", "-s", "test", f"PYTHON={sys.executable}"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert ours == [
        "error: requirements/dev.lock does not match pyproject.toml's dependencies: run `make lock`"
    ]
    # Stopped before installing anything from the stale lock.
    assert not (project / ".venv" / ".installed-dev").exists()
    assert not list((project / ".venv").glob("lib/python*/site-packages/pydantic"))


@pytest.mark.slow
def test_the_command_prints_nothing_from_other_libraries() -> None:
    """`reconciler --help` imports asyncssh, which trips cryptography's DSA deprecation."""
    script = Path(sys.executable).parent / "reconciler"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    env.pop("RECONCILER_DEBUG", None)
    quiet = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env)
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert quiet.stdout.startswith("usage: reconciler")
    # The warning is real and still reaches a developer who asks for it.
    loud = subprocess.run(
        [str(script), "--help"],
        capture_output=True,
        text=True,
        env={**env, "RECONCILER_DEBUG": "1"},
    )
    assert "CryptographyDeprecationWarning" in loud.stderr


def test_own_warnings_still_show() -> None:
    code = (
        "import warnings\n"
        "from reconciler.cli.entry import quiet_third_party_warnings\n"
        "quiet_third_party_warnings()\n"
        "warnings.warn_explicit('theirs', UserWarning, 'x.py', 1, module='asyncssh.misc')\n"
        "warnings.warn_explicit('ours', UserWarning, 'y.py', 1, module='reconciler.app.x')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    env.pop("RECONCILER_DEBUG", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "ours" in result.stderr
    assert "theirs" not in result.stderr
