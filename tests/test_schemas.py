"""The JSON Schemas: checked in up to date, and as strict as the models they come from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler.adapters.schema_files import schema_drift, schema_text, write_schemas
from reconciler.model.schema import generate_schemas

CHECKED_IN = Path(__file__).resolve().parent.parent / "schemas"

KIND_FILES = [
    "baseline.schema.json",
    "branch.schema.json",
    "harness.schema.json",
    "profile.schema.json",
    "repo.schema.json",
    "spec.schema.json",
    "testgroup.schema.json",
    "workerpool.schema.json",
]

VALID_DOCUMENTS = """\
kind: Repo
name: bcachefs
url: https://evilpiepirate.org/git/bcachefs.git
---
kind: Profile
name: kasan
kconfig: [KASAN=y, KASAN_VMALLOC=y]
toolchain: gcc-14
runtime: {mem: 8G, cpus: 4, env: {ktest_kasan: "1"}}
---
kind: Branch
name: bcachefs-testing
repo: bcachefs
ref: bcachefs-testing
max_commits: 50
test_groups: [bcachefs-core]
profiles: [default, kasan]
baseline: v7.0
---
kind: WorkerPool
name: farm
hosts:
  - {host: farm1.example.org, user: ci, slots: 8, arch: aarch64}
"""


def spec_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((CHECKED_IN / "spec.schema.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_checked_in_schemas_match_the_models() -> None:
    drift = schema_drift(CHECKED_IN)
    assert drift == [], f"schemas/ is out of date ({', '.join(drift)}): run `make schemas`"


def test_one_schema_per_kind_and_one_for_any_document() -> None:
    schemas = generate_schemas()
    assert sorted(schemas) == KIND_FILES
    for file_name, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"urn:kernel-reconciler:schema:{file_name}"
        jsonschema.Draft202012Validator.check_schema(schema)
    assert schemas["branch.schema.json"]["title"] == "Branch"
    assert schemas["spec.schema.json"]["title"] == "kernel-reconciler spec document"


def test_unknown_keys_are_forbidden_at_every_level() -> None:
    schemas = generate_schemas()
    assert schemas["branch.schema.json"]["additionalProperties"] is False
    profile = schemas["profile.schema.json"]
    assert profile["$defs"]["Runtime"]["additionalProperties"] is False
    any_document = schemas["spec.schema.json"]
    assert {
        kind: definition["additionalProperties"]
        for kind, definition in any_document["$defs"].items()
        if "properties" in definition
    } == {
        "Baseline": False,
        "Branch": False,
        "Harness": False,
        "HarnessDependency": False,
        "Profile": False,
        "Repo": False,
        "Runtime": False,
        "TestGroup": False,
        "WorkerHost": False,
        "WorkerPool": False,
    }


def test_valid_documents_pass_the_spec_schema() -> None:
    validator = spec_validator()
    documents = list(YAML(typ="safe").load_all(VALID_DOCUMENTS))
    assert [list(validator.iter_errors(document)) for document in documents] == [[], [], [], []]


def test_the_shipped_spec_set_passes_the_spec_schema() -> None:
    validator = spec_validator()
    spec_files = sorted((CHECKED_IN.parent / "specs").rglob("*.yaml"))
    documents = [
        document
        for spec_file in spec_files
        for document in YAML(typ="safe").load_all(spec_file.read_text(encoding="utf-8"))
        if document is not None
    ]
    assert documents, "specs/ holds no documents"
    assert [error.message for d in documents for error in validator.iter_errors(d)] == []


@pytest.mark.parametrize(
    ("document", "rejected_by", "at"),
    [
        (
            {"kind": "Branch", "name": "main", "repo": "linux", "ref": "master",
             "max_comits": 5, "test_groups": ["core"], "profiles": ["default"]},
            "additionalProperties",
            [],
        ),
        (
            {"kind": "Branch", "name": "main", "repo": "linux", "ref": "master",
             "max_commits": "lots", "test_groups": ["core"], "profiles": ["default"]},
            "type",
            ["max_commits"],
        ),
        (
            {"kind": "Profile", "name": "kasan", "runtime": {"memory": "8G"}},
            "additionalProperties",
            ["runtime"],
        ),
    ],
)  # fmt: skip
def test_unknown_keys_and_wrong_types_are_rejected(
    document: dict[str, Any], rejected_by: str, at: list[str]
) -> None:
    assert not spec_validator().is_valid(document)
    # The kind's own schema says why, and where.
    kind_schema = generate_schemas()[f"{document['kind'].lower()}.schema.json"]
    errors = list(jsonschema.Draft202012Validator(kind_schema).iter_errors(document))
    assert [(error.validator, list(error.absolute_path)) for error in errors] == [(rejected_by, at)]


def test_an_unknown_kind_is_rejected_by_the_spec_schema() -> None:
    assert not spec_validator().is_valid({"kind": "Branchh", "name": "main"})


def test_write_schemas_writes_every_file_atomically_and_clears_drift(tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    assert schema_drift(target) == KIND_FILES

    written = write_schemas(target)

    assert written == [target / name for name in KIND_FILES]
    assert sorted(path.name for path in target.iterdir()) == KIND_FILES  # no temp files left
    assert schema_drift(target) == []
    branch = target / "branch.schema.json"
    assert branch.read_text(encoding="utf-8") == schema_text(
        generate_schemas()["branch.schema.json"]
    )
    assert oct(branch.stat().st_mode & 0o777) == "0o644"

    branch.write_text("{}\n", encoding="utf-8")
    assert schema_drift(target) == ["branch.schema.json"]
