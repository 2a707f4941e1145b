"""Write or check the locked dependency sets that `make demo`, `make test` and CI install from.

Two locks, each a pip requirements file with a sha256 for every distribution file:

- `run.lock`: the runtime dependencies and the build backend (`make demo`);
- `dev.lock`: those plus the `test`, `dev` and `bench` extras (`make test`, `make check`, CI).

`dev.lock` is resolved with `run.lock` as a constraint, so both agree on every shared package.
Each lock starts with a line holding the hash of the inputs it was resolved from (the
`[project]` dependencies, extras, `requires-python` and `[build-system] requires` of
`pyproject.toml`); `check` compares it, so a lock left behind by an edit to `pyproject.toml`
stops the install with one line saying to run `make lock`. Only the inputs are hashed: editing
ruff's settings does not ask for a new lock.

Resolution is done by uv (`uv pip compile --universal`: one lock for every platform and
Python >= 3.11), pinned in `dev.lock` itself; installing needs only pip
(`pip install --require-hashes --no-deps`). Standard library only: it runs before anything is
installed.

    python requirements/lock.py check [LOCK...]   exit 1 with one line when a lock is stale
    python requirements/lock.py write             re-resolve both locks (`make lock`)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYPROJECT = ROOT / "pyproject.toml"
RUN_LOCK = HERE / "run.lock"
DEV_LOCK = HERE / "dev.lock"
LOCKS = (RUN_LOCK, DEV_LOCK)
PYTHON_FLOOR = "3.11"
INPUTS_LINE = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})$", re.MULTILINE)
UV_PIN = re.compile(r"^uv==(\S+)", re.MULTILINE)


def inputs(pyproject: Path = PYPROJECT) -> dict[str, object]:
    """What a lock is resolved from; nothing else in pyproject.toml changes a resolution."""
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-requires": data.get("build-system", {}).get("requires", []),
    }


def inputs_hash(pyproject: Path = PYPROJECT) -> str:
    text = json.dumps(inputs(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def stale(lock: Path, *, expected: str) -> str | None:
    """Why `lock` does not match pyproject.toml, or None when it does."""
    name = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return f"{name} is missing: run `make lock`"
    match = INPUTS_LINE.search(text)
    if match is None or match.group(1) != expected:
        return f"{name} does not match pyproject.toml's dependencies: run `make lock`"
    return None


def check(locks: list[Path]) -> int:
    expected = inputs_hash()
    problems = [problem for lock in locks if (problem := stale(lock, expected=expected))]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _uv() -> str:
    """uv at the version dev.lock pins, installed into this interpreter's environment."""
    bin_dir = Path(sys.executable).parent
    uv = bin_dir / "uv"
    pin = UV_PIN.search(DEV_LOCK.read_text()) if DEV_LOCK.exists() else None
    wanted = f"uv=={pin.group(1)}" if pin else "uv"
    have = ""
    if uv.exists():
        have = subprocess.run(
            [str(uv), "--version"], capture_output=True, text=True, check=False
        ).stdout
    if not (pin and have.split()[1:2] == [pin.group(1)]):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", wanted], check=True
        )  # deliberately online: refreshing a lock is the one step that asks the index
    return str(uv)


def _compile(uv: str, *, sources: list[str], extras: list[str], out: Path, digest: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / out.name
        command = [
            uv,
            "pip",
            "compile",
            "--quiet",
            "--universal",
            "--python-version",
            PYTHON_FLOOR,
            "--generate-hashes",
            "--no-header",
            "--upgrade",
            *(argument for extra in extras for argument in ("--extra", extra)),
            *sources,
            "--output-file",
            str(target),
        ]
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "UV_NO_CONFIG": "1"})
        header = (
            f"# {out.name}: written by `make lock` (requirements/lock.py); do not edit.\n"
            f"# inputs-sha256: {digest}\n"
        )
        out.write_text(header + target.read_text())


def write() -> int:
    uv = _uv()
    digest = inputs_hash()
    project = inputs()
    extras = sorted(project["optional-dependencies"])  # type: ignore[arg-type]
    # A fixed scratch directory, so the locks' "via" annotations name the same path every time.
    scratch = HERE / ".lock-inputs"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        # The build backend is locked too: the package is installed without build isolation,
        # so nothing unpinned is fetched to build it.
        build = scratch / "build-system.in"
        build.write_text("\n".join(project["build-requires"]) + "\n")  # type: ignore[arg-type]
        sources = ["pyproject.toml", str(build.relative_to(ROOT))]
        _compile(uv, sources=sources, extras=[], out=RUN_LOCK, digest=digest)
        sources += ["--constraints", str(RUN_LOCK.relative_to(ROOT))]
        _compile(uv, sources=sources, extras=extras, out=DEV_LOCK, digest=digest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for lock in LOCKS:
        count = len(re.findall(r"^[A-Za-z0-9][^ ]*==", lock.read_text(), re.MULTILINE))
        print(f"{lock.relative_to(ROOT)}: {count} packages")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        return check([Path(arg).resolve() for arg in argv[1:]] or list(LOCKS))
    if argv == ["write"]:
        return write()
    print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
    print("usage: lock.py check [LOCK...] | lock.py write", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
