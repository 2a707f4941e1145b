"""Where the real fstests result files of `shared/data` are (see its README).

CI runs in a fresh clone with `shared/` beside it; a development checkout has it at
/work/shared. The tests that use these files fail, never skip, when neither is there.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = (ROOT.parent / "shared" / "data", Path("/work/shared/data"))


def shared_data() -> Path:
    for candidate in CANDIDATES:
        if (candidate / "README.md").exists():
            return candidate
    raise FileNotFoundError(
        "the real fstests files of shared/data are missing: looked in "
        + ", ".join(str(c) for c in CANDIDATES)
    )


DATA = shared_data()
