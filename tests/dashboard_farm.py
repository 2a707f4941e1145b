"""A quickstart farm with hostile text in git and in a log, applied once, for dashboard tests.

On top of the quickstart's `main` it commits a test script whose failure output holds
`<script>window.__pwned=1</script>` and whose commit subject holds markup too: real strings from
a real repository, through a real `apply`, so the dashboard is tested on what a farm would
really store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOG_SCRIPT = "<script>window.__pwned=1</script>"
SUBJECT = "calc: <b>markup</b> & <script>window.__pwned=2</script> in a subject"
FAILING_COMMIT = "8bb4635cbf83f624890cf0f7ab4548ca4f8ab10b"

MARKUP_TEST = f"""#!/bin/sh
# Prints markup in its failure diagnostics: the dashboard must show it as text.
if [ "$1" = "--list" ]; then echo markup; exit 0; fi
echo "TAP version 13"
echo "1..1"
echo "not ok 1 - markup"
echo "# {LOG_SCRIPT}"
"""


def add_markup_commit(repo: Path) -> str:
    """Commit tests/markup.t on `main` of the quickstart repo; returns the new commit."""
    (repo / "tests" / "markup.t").write_text(MARKUP_TEST)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Mallory",
        "GIT_AUTHOR_EMAIL": "mallory@example.org",
        "GIT_COMMITTER_NAME": "Mallory",
        "GIT_COMMITTER_EMAIL": "mallory@example.org",
        "GIT_AUTHOR_DATE": "2026-03-01T10:00:00Z",
        "GIT_COMMITTER_DATE": "2026-03-01T10:00:00Z",
    }
    git = ["git", "-C", str(repo), "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
    subprocess.run([*git, "add", "tests/markup.t"], check=True, env=env)
    subprocess.run([*git, "commit", "-q", "-m", SUBJECT], check=True, env=env)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, env=env, capture_output=True, text=True
    )
    return head.stdout.strip()


def applied_markup_farm(farm: Path) -> str:
    """Add the markup commit to the farm's repo and apply the specs; returns that commit."""
    commit = add_markup_commit(farm / "examples" / "quickstart" / "repo")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--specs", str(farm / "specs")],
        capture_output=True,
        text=True,
        cwd=farm,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return commit
