"""`reconciler store clear-cache`: throw away what the store can rebuild, and say how much.

The enumeration cache is keyed by everything that decides a listing, so it never needs clearing
for correctness; clearing it is for disk space, for a listing environment the key cannot see
(a system tool upgraded under a list command), or for starting over. Dependency exports are
made again from the mirrors on the next plan. Results, builds and logs are never touched.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from reconciler.app.planning import Workspace
from reconciler.model.errors import StoreError


@dataclass(frozen=True)
class ClearedCache:
    listings: int
    """Cached test-file listings removed."""
    trees: int
    """Exported dependency trees removed."""


def _count_listings(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
            return sum(
                connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - names read from the file itself
                for table in tables
                if table.startswith("enumeration_")
            )
    except sqlite3.Error:
        return 0  # damaged: removed all the same, nothing countable in it


def clear_cache(workspace: Workspace) -> ClearedCache:
    listings = 0
    # Where earlier versions kept it: beside the specs rather than in the store.
    legacy = workspace.state_dir / "cache" / "enumeration.sqlite"
    try:
        for path in (workspace.enumeration_cache, legacy):
            if path.exists():
                listings += _count_listings(path)
            for stale in (path, path.with_name(path.name + "-journal")):
                stale.unlink(missing_ok=True)
        trees_dir = workspace.dependency_trees
        trees = 0
        if trees_dir.is_dir():
            trees = sum(1 for entry in trees_dir.iterdir() if entry.is_dir())
            shutil.rmtree(trees_dir)
    except OSError as exc:
        raise StoreError(
            f"cannot clear the cache in {workspace.cache_dir}: {exc}",
            hint="check the store directory's permissions",
        ) from exc
    return ClearedCache(listings=listings, trees=trees)
