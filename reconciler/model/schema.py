"""JSON Schemas of the spec kinds, generated from the pydantic models so they never disagree.

Editors (yaml-language-server) and other tools (jsonschema, CI linters) validate specs with
these before the reconciler ever sees them. The checked-in copies in `schemas/` are written by
`reconciler.adapters.schema_files`; this module only computes them, without I/O.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from reconciler.model.specs import SPEC_KINDS, AnySpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SPEC_SCHEMA_FILE = "spec.schema.json"
"""The schema of any document; the one to point editors at."""

# A URN rather than an invented web address: the schemas are files in the repo, not hosted.
_ID_PREFIX = "urn:kernel-reconciler:schema:"


def schema_file_name(kind: str) -> str:
    """`Branch` -> `branch.schema.json`."""
    return f"{kind.lower()}.schema.json"


def _with_header(schema: dict[str, Any], *, file_name: str, title: str) -> dict[str, Any]:
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{_ID_PREFIX}{file_name}",
        **schema,
        "title": title,
    }


def generate_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (draft 2020-12): one per spec kind, and one for any document.

    Every model forbids unknown keys, which pydantic renders as `additionalProperties: false`,
    so an editor flags a typo'd key just as the loader does.
    """
    schemas = {
        schema_file_name(kind): _with_header(
            model.model_json_schema(), file_name=schema_file_name(kind), title=kind
        )
        for kind, model in SPEC_KINDS.items()
    }
    any_document = TypeAdapter(AnySpec).json_schema()
    any_document["description"] = (
        "One document of a kernel-reconciler spec directory; `kind` selects which of "
        f"{', '.join(sorted(SPEC_KINDS))} it is."
    )
    schemas[SPEC_SCHEMA_FILE] = _with_header(
        any_document, file_name=SPEC_SCHEMA_FILE, title="kernel-reconciler spec document"
    )
    return schemas
