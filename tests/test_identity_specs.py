"""Identity is blind to how specs are written: file layout, document order, YAML formatting,
branch names and worker pools never change a build or result identity."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.app.planning import Planner

ROOT = Path(__file__).resolve().parent.parent

WORKERS = {
    "kind": "WorkerPool",
    "name": "farm",
    "hosts": [{"host": "farm1.example.org", "user": "ci", "slots": 8, "arch": "x86_64"}],
}


def documents() -> list[dict[str, object]]:
    yaml = YAML(typ="safe")
    return [doc for doc in yaml.load_all((ROOT / "specs/quickstart.yaml").read_text()) if doc]


def identities(spec_dir: Path, git_cache: Path) -> set[tuple[str, str, str, str]]:
    """(commit, profile, build, unit) of every slot, without branch names."""
    planner = Planner(git=GitResolver(git_cache), cache=MemoryEnumerationCache())
    desired = planner.desired(load_specs(spec_dir))
    return {
        (slot.commit.commit, slot.profile, slot.build.id, unit.unit)
        for slot in desired.slots
        for unit in slot.units
    }


def render(document: dict[str, object], style: str) -> str:
    if style == "json":  # JSON is YAML too
        return json.dumps(document, indent=1)
    yaml = YAML()
    yaml.default_flow_style = style == "flow"
    yaml.indent(mapping=4, sequence=6, offset=2)
    out = io.StringIO()
    yaml.dump(document, out)
    return "# a comment changes nothing\n" + out.getvalue()


def write_layout(
    spec_dir: Path, docs: list[dict[str, object]], files: list[int], styles: list[str]
) -> None:
    by_file: dict[int, list[str]] = {}
    for doc, file, style in zip(docs, files, styles, strict=True):
        by_file.setdefault(file, []).append(render(doc, style))
    for file, texts in by_file.items():
        path = spec_dir / f"group{file % 2}" / f"part{file}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n---\n".join(texts))


def point_at_repo(docs: list[dict[str, object]], repo: Path) -> list[dict[str, object]]:
    return [{**doc, "url": str(repo)} if doc["kind"] == "Repo" else doc for doc in docs]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_layout_order_and_formatting_leave_identities_unchanged(
    data: st.DataObject, quickstart_template: Path
) -> None:
    repo = quickstart_template / "examples/quickstart/repo"
    docs = point_at_repo(documents(), repo)
    # Hypothesis runs many examples in one test call: each gets its own scratch directory.
    scratch = Path(tempfile.mkdtemp(dir=quickstart_template))
    try:
        reference = scratch / "reference"
        write_layout(reference, docs, [0] * len(docs), ["block"] * len(docs))
        expected = identities(reference, scratch / "git")

        shuffled = data.draw(st.permutations(docs))
        files = data.draw(st.lists(st.integers(0, 3), min_size=len(docs), max_size=len(docs)))
        styles = data.draw(
            st.lists(
                st.sampled_from(["block", "flow", "json"]), min_size=len(docs), max_size=len(docs)
            )
        )
        renamed = [
            {**doc, "name": "renamed-branch"} if doc["kind"] == "Branch" else doc
            for doc in shuffled
        ]
        variant = scratch / "variant"
        write_layout(variant, [*renamed, WORKERS], [*files, 0], [*styles, "flow"])
        assert identities(variant, scratch / "git") == expected
    finally:
        shutil.rmtree(scratch)


def test_changing_a_build_input_in_a_spec_changes_identities(
    quickstart_template: Path, tmp_path: Path
) -> None:
    repo = quickstart_template / "examples/quickstart/repo"
    docs = point_at_repo(documents(), repo)
    write_layout(tmp_path / "a", docs, [0] * len(docs), ["block"] * len(docs))
    changed = [
        {**doc, "build_env": {"CFLAGS": "-O3"}} if doc.get("name") == "default" else doc
        for doc in docs
    ]
    write_layout(tmp_path / "b", changed, [0] * len(docs), ["block"] * len(docs))
    before = identities(tmp_path / "a", tmp_path / "git")
    after = identities(tmp_path / "b", tmp_path / "git")
    debug_before = {i for i in before if i[1] == "debug"}
    default_before = {i for i in before if i[1] == "default"}
    assert debug_before <= after, "the debug profile did not change"
    assert not default_before & after, "every default-profile identity must change"
