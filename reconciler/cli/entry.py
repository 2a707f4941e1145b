"""The `reconciler` console script, which quiets other libraries' warnings before importing them.

A warning from a dependency (cryptography deprecating DSA, which asyncssh touches at import, is
the one that prompted this) is for this project's developers, not for the person running a
command: it says nothing about their specs or their farm. So warnings attributed to any module
outside `reconciler` are dropped before the first import, unless the user asked for warnings
themselves (`python -W`, `PYTHONWARNINGS`) or for debugging (`RECONCILER_DEBUG=1`). Our own
warnings still show. The test suite imports `main` directly, never this module, and keeps
turning every warning into an error (pyproject.toml names each one it lets through).
"""

from __future__ import annotations

import os
import sys
import warnings

DEBUG_ENV = "RECONCILER_DEBUG"
OTHER_LIBRARIES = r"(?!reconciler(\.|$))"
"""Matches every module name except `reconciler` and its submodules."""


def quiet_third_party_warnings() -> None:
    if sys.warnoptions or os.environ.get(DEBUG_ENV):
        return
    warnings.filterwarnings("ignore", module=OTHER_LIBRARIES)


def entry_point() -> None:
    quiet_third_party_warnings()
    from reconciler.cli.main import main  # after the filter, on purpose

    sys.exit(main())
