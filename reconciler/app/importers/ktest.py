"""Reading ktest CI output directories into imported outcomes.

ktest's CI (`ci/_test-git-branch.sh`) leaves, per commit, one directory per subtest:
`<commit>/<result key>/` holding `status` (one line), `duration` (whole seconds), `log.br` and
`full_log.br` (brotli; the full log of the VM run, often a symlink shared by the subtests of
one run). The result key is the test file's path under `tests/` without `.ktest`, then the
subtest, with every `/` turned into `.`: `tests/fs/bcachefs/single_device.ktest` and subtest
`wipe_btrfs` give `fs.bcachefs.single_device.wipe_btrfs`.

That mapping cannot be undone in general (a directory or file name may hold a dot), so:
- matched imports compute each desired unit's key forwards (`result_key`) and look keys up,
  which is exact;
- unmatched imports split a key at its last dot (`split_result_key`): the subtest is the last
  component, the rest is the test file. Keys of tests whose names hold dots land on a different
  test name than a run would use; they stay archives either way.
A key carrying a kernel/env variant (`test@variant.subtest`) is never matched to a plan (the
variant changed what ran); unmatched imports keep the variant in the test name.

Status lines are read with the harness's own anchored table (`LINE_STATUSES`): PASSED -> pass,
FAILED -> fail, NOTRUN -> skip, FAILED TIMEOUT -> timeout. The CI writes a few whole-line
markers of its own, matched exactly: `TEST FAILED` -> fail (the test ran and failed);
`FAILED TO RUN` -> error (the CI could not run it: infrastructure, retried); `IN PROGRESS` and
`NOT STARTED` -> not imported, the run never finished and absent is not passed. Any other line
is refused: guessing a verdict is how ktest's own parser went wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import brotli

from reconciler.adapters.harness.ktest import TEST_SUFFIX, parse_ktest_line
from reconciler.app.importers.records import ImportedOutcome
from reconciler.model.errors import UserError
from reconciler.model.results import Status

TESTS_DIR = "tests/"
CI_MARKERS: dict[str, Status | None] = {
    "TEST FAILED": Status.FAIL,
    "FAILED TO RUN": Status.ERROR,
    "IN PROGRESS": None,
    "NOT STARTED": None,
    "========= NOT STARTED": None,
}
"""Whole-line statuses the CI writes itself; None: the subtest did not finish."""
MAX_LOG_BYTES = 512 * 1024 * 1024
_COMMIT = re.compile(r"[0-9a-f]{40}")


def result_key(test: str, subtest: str) -> str:
    """The CI's directory name for a subtest of a test file named as our enumeration names it."""
    name = test.removeprefix(TESTS_DIR).removesuffix(TEST_SUFFIX)
    return f"{name}.{subtest}".replace("/", ".")


def split_result_key(key: str) -> tuple[str, str]:
    """Best-effort inverse of `result_key` for unmatched imports (see the module docstring)."""
    name, dot, subtest = key.rpartition(".")
    if not dot or not name or not subtest:
        raise UserError(
            f"ktest result key {key!r} is not <test path with dots>.<subtest>",
            hint="import the CI's per-commit output directory (c/<commit>/)",
        )
    return f"{TESTS_DIR}{name.replace('.', '/')}{TEST_SUFFIX}", subtest


@dataclass(frozen=True)
class KtestCommit:
    commit: str
    outcomes: tuple[ImportedOutcome, ...]
    incomplete: tuple[str, ...]


def read_ktest_dir(root: Path) -> list[KtestCommit]:
    """Every `<commit>/<result key>/` under `root`, each commit's keys sorted."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory", hint="give ktest's CI output directory")
    commits = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    if not commits:
        raise UserError(f"{root} holds no <commit>/ directories", hint="give the c/ directory")
    read = []
    for commit_dir in commits:
        if not _COMMIT.fullmatch(commit_dir.name):
            raise UserError(
                f"{commit_dir} is not named by a full commit id",
                hint="ktest's CI keeps results as <commit>/<result key>/status",
            )
        outcomes: list[ImportedOutcome] = []
        incomplete: list[str] = []
        for result_dir in sorted(p for p in commit_dir.iterdir() if p.is_dir()):
            outcome = _read_result(result_dir, root=root)
            if outcome is None:
                incomplete.append(result_dir.name)
            else:
                outcomes.append(outcome)
        read.append(KtestCommit(commit_dir.name, tuple(outcomes), tuple(incomplete)))
    return read


def _read_result(result_dir: Path, *, root: Path) -> ImportedOutcome | None:
    key = result_dir.name
    status_file = result_dir / "status"
    line = _read_text(status_file, root=root)
    if line is None:
        raise UserError(f"{result_dir} has no status file", hint="is this a ktest output dir?")
    line = line.strip()
    outcome = parse_ktest_line(line)
    if outcome is not None:
        name = outcome.subtest.replace("/", ".")
        if not key.endswith(f".{name}"):
            raise UserError(
                f"{status_file} reports subtest {outcome.subtest!r}, not one of {key}",
                hint="the directory holds another subtest's status; check the output directory",
            )
        status, seconds, message = outcome.status, outcome.duration, outcome.message
    elif line in CI_MARKERS:
        marker = CI_MARKERS[line]
        if marker is None:
            return None
        status, seconds, message = marker, None, f"ktest CI: {line}"
    else:
        raise UserError(
            f"{status_file}: unrecognised ktest status {line[:80]!r}",
            hint="known: ========= PASSED|FAILED|NOTRUN|FAILED TIMEOUT <t> in <n>s, "
            + ", ".join(CI_MARKERS),
        )
    duration_text = _read_text(result_dir / "duration", root=root)
    if duration_text is not None and duration_text.strip().isdigit():
        seconds = float(duration_text.strip())
    return ImportedOutcome(
        key=key,
        status=status,
        duration=seconds,
        message=message,
        log=_read_brotli(result_dir / "log.br", root=root),
        full_log=_read_brotli(result_dir / "full_log.br", root=root),
    )


def _inside(path: Path, *, root: Path) -> Path | None:
    """`path` resolved, when it exists and stays under `root` (the CI links full logs)."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None  # missing or a dangling link: the CI removes full logs it rotates
    if not resolved.is_relative_to(root.resolve()):
        raise UserError(f"{path} links outside {root}", hint="copy the results, not links")
    return resolved if resolved.is_file() else None


def _read_bytes(path: Path, *, root: Path) -> bytes | None:
    resolved = _inside(path, root=root)
    if resolved is None:
        return None
    if resolved.stat().st_size > MAX_LOG_BYTES:
        raise UserError(f"{path} is larger than {MAX_LOG_BYTES} bytes")
    try:
        return resolved.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_text(path: Path, *, root: Path) -> str | None:
    data = _read_bytes(path, root=root)
    return data.decode("utf-8", errors="replace") if data is not None else None


def _read_brotli(path: Path, *, root: Path) -> bytes | None:
    data = _read_bytes(path, root=root)
    if data is None:
        return None
    try:
        return bytes(brotli.decompress(data))
    except brotli.error as exc:
        raise UserError(f"{path} is not brotli-compressed: {exc}") from exc
