"""Write the generated JSON Schemas to `schemas/`, and tell whether the checked-in copies drifted.

The schemas are checked in so editors find them in a fresh clone without running anything; a
test compares them with the models (`schema_drift`) so a model change cannot ship without them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reconciler.model.errors import InfrastructureError
from reconciler.model.schema import generate_schemas


def schema_text(schema: dict[str, Any]) -> str:
    """The one serialisation we check in: stable key order, so diffs show real changes."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


_SCHEMA_FILE_MODE = 0o644


def _write_atomically(path: Path, text: str) -> None:
    # Temp file in the same directory + rename: an editor or a concurrent reader sees the old
    # schema or the new one, never half of one.
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as temp_file:
            # mkstemp makes the file private (0600); a checked-in schema is for everyone.
            os.fchmod(temp_file.fileno(), _SCHEMA_FILE_MODE)
            temp_file.write(text)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_schemas(directory: Path) -> list[Path]:
    """Write every generated schema into `directory` (created if missing); the paths written."""
    written: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, schema in sorted(generate_schemas().items()):
            path = directory / file_name
            _write_atomically(path, schema_text(schema))
            written.append(path)
    except OSError as exc:
        raise InfrastructureError(
            f"cannot write JSON Schemas: {exc.strerror}",
            where=str(exc.filename or directory),
            hint="check the directory exists and is writable",
        ) from exc
    return written


def schema_drift(directory: Path) -> list[str]:
    """Names of generated schema files missing from `directory` or different there, sorted."""
    drifted: list[str] = []
    for file_name, schema in sorted(generate_schemas().items()):
        try:
            checked_in = (directory / file_name).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            drifted.append(file_name)
            continue
        except OSError as exc:
            raise InfrastructureError(
                f"cannot read JSON Schema: {exc.strerror}",
                where=str(directory / file_name),
                hint="check the file is readable",
            ) from exc
        if checked_in != schema_text(schema):
            drifted.append(file_name)
    return drifted
