"""`compare` and `explain` on the quickstart farm after a real `reconciler apply`: real git, real
builds and TAP runs, the real store; exit codes and output asserted as values.

The quickstart history: v1.0 = 8fea830 (multiplication), 3c52e3e adds division, 8bb4635 accepts
negative numbers and breaks subtraction, 201ffca fixes it. Both profiles see the same break.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.store.files import ResultStore
from reconciler.app.explain import explain
from reconciler.cli import main as cli
from reconciler.core.identity import Identity, identity_of
from reconciler.model.errors import UserError
from reconciler.model.results import Attempt, BuildRecord, BuildStatus, Status

Run = Callable[..., tuple[int, str, str]]

V1_VS_8BB4635 = """\
A  baseline:v1.0        8fea83028b76  calc: add multiplication
B  main@8bb4635         8bb4635cbf83  calc: accept negative numbers

profile debug: 1 regression, 3 new, 6 unchanged-pass
  regression      tests/arith.t:subtract         pass -> fail
  new             tests/arith.t:divide           - -> pass
  new             tests/arith.t:negative         - -> pass
  new             tests/errors.t:divide_by_zero  - -> pass

profile default: 1 regression, 3 new, 6 unchanged-pass
  regression      tests/arith.t:subtract         pass -> fail
  new             tests/arith.t:divide           - -> pass
  new             tests/arith.t:negative         - -> pass
  new             tests/errors.t:divide_by_zero  - -> pass

gate: regression (exit 1)
"""


@pytest.fixture(scope="module")
def applied(quickstart_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart farm after one real `reconciler apply`; tests that write copy it first."""
    farm = tmp_path_factory.mktemp("compare") / "farm"
    shutil.copytree(quickstart_template, farm, symlinks=True)
    subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--specs", str(farm / "specs")],
        check=True,
        capture_output=True,
        timeout=100,
    )
    return farm


@pytest.fixture
def private(applied: Path, tmp_path: Path) -> Path:
    """A copy of the applied farm this test may change."""
    farm = tmp_path / "farm"
    shutil.copytree(applied, farm, symlinks=True)
    return farm


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    def invoke(farm: Path, *argv: str) -> tuple[int, str, str]:
        code = cli.main([*argv, "--specs", str(farm / "specs")])
        out, err = capsys.readouterr()
        return code, out, err

    yield invoke


def compare_json(run: Run, farm: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(farm, "compare", *argv, "--format", "json")
    return code, json.loads(out)


def changes(document: dict[str, Any], *, skip_unchanged: bool = True) -> list[tuple[str, ...]]:
    return [
        (item["profile"], item["test"], item["subtest"], item["change"])
        for item in document["items"]
        if not (skip_unchanged and item["change"] == "unchanged-pass")
    ]


def test_baseline_against_the_breaking_commit(run: Run, applied: Path) -> None:
    code, out, err = run(applied, "compare", "baseline:v1.0", "main@8bb4635")
    assert (code, out, err) == (1, V1_VS_8BB4635, "")


def test_markdown_puts_the_summary_first_and_collapses_details(run: Run, applied: Path) -> None:
    code, out, _ = run(applied, "compare", "baseline:v1.0", "main@8bb4635", "--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        "**compare <code>baseline:v1.0</code> → <code>main@8bb4635</code>: 2 regressions, 6 new,"
        " 12 unchanged-pass** "
        "(gate regression, exit 1)"
    )
    assert "| debug | 1 | 0 | 0 | 0 | 0 | 3 | 0 | 0 | 6 |" in lines
    assert "| default | 1 | 0 | 0 | 0 | 0 | 3 | 0 | 0 | 6 |" in lines
    assert lines.count("<details>") == 2
    assert "<summary>debug: 1 regression, 3 new, 6 unchanged-pass</summary>" in lines
    assert "- regression: <code>tests/arith.t:subtract</code> pass -> fail" in lines


def test_json_names_sides_counts_and_result_ids(run: Run, applied: Path) -> None:
    code, document = compare_json(run, applied, "baseline:v1.0", "main@8bb4635")
    assert code == document["gate"] == 1
    assert document["a"]["commit"].startswith("8fea830")
    assert document["a"]["origins"] == ["baseline:v1.0"]
    assert document["b"]["subject"] == "calc: accept negative numbers"
    regressions = [
        (item["profile"], item["test"], item["subtest"])
        for item in document["items"]
        if item["change"] == "regression"
    ]
    assert regressions == [
        ("debug", "tests/arith.t", "subtract"),
        ("default", "tests/arith.t", "subtract"),
    ]
    assert {p: c["regression"] for p, c in document["counts"].items()} == {
        "debug": 1,
        "default": 1,
    }
    assert all(len(item["b"]["result"]) == 64 for item in document["items"])


def test_the_fix_is_fixed_in_each_profile(run: Run, applied: Path) -> None:
    code, document = compare_json(run, applied, "main@8bb4635", "main@201ffca")
    assert code == 0
    assert changes(document) == [
        ("debug", "tests/arith.t", "subtract", "fixed"),
        ("default", "tests/arith.t", "subtract", "fixed"),
    ]


def test_going_back_before_division_removes_its_tests(run: Run, applied: Path) -> None:
    code, document = compare_json(run, applied, "main@3c52e3e", "main@8fea830")
    assert code == 0
    assert changes(document) == [
        (profile, test, subtest, "removed")
        for profile in ("debug", "default")
        for test, subtest in (("tests/arith.t", "divide"), ("tests/errors.t", "divide_by_zero"))
    ]


def test_selectors_branch_head_bare_commit_and_profile_filter(run: Run, applied: Path) -> None:
    # `main` is its newest commit, 201ffca; a bare prefix finds 8fea830 under main and v1.0.
    code, document = compare_json(run, applied, "8fea830", "main", "--profile", "debug")
    assert code == 0
    assert document["b"]["commit"].startswith("201ffca")
    assert document["a"]["origins"] == ["baseline:v1.0", "main"]
    assert list(document["counts"]) == ["debug"]
    assert changes(document) == [
        ("debug", "tests/arith.t", "divide", "new"),
        ("debug", "tests/arith.t", "negative", "new"),
        ("debug", "tests/errors.t", "divide_by_zero", "new"),
    ]
    # The same tree under a baseline and a branch: the very same results.
    code, document = compare_json(run, applied, "baseline:v1.0", "main@8fea830")
    assert code == 0
    assert {item["change"] for item in document["items"]} == {"unchanged-pass"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("nosuch", "main"), "error: 'nosuch' is not a branch, baseline or commit the specs test"),
        (("baseline:v9", "main"), "error: no baseline named 'v9' (hint: known baselines: v1.0)"),
        (("main@ffffff", "main"), "error: no commit starting with ffffff in branch 'main'"),
        (("main@8b", "main"), "error: '8b' is not a commit prefix"),
        (("other@8bb4635", "main"), "error: no tested branch named 'other'"),
        (("main", "main", "--profile", "kasan"), "error: no profile 'kasan' on either side"),
    ],
)
def test_bad_selectors_are_user_errors(
    run: Run, applied: Path, argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(applied, "compare", *argv)
    assert (code, out) == (1, "")
    assert err.startswith(message)


def _result_id(document: dict[str, Any], *, profile: str, subtest: str) -> str:
    side = next(
        item["b"]
        for item in document["items"]
        if item["profile"] == profile and item["subtest"] == subtest
    )
    result: str = side["result"]
    return result


def test_a_missing_result_makes_the_comparison_incomplete(run: Run, private: Path) -> None:
    _, document = compare_json(run, private, "main@201ffca", "main@8bb4635")
    gone = _result_id(document, profile="debug", subtest="chain")
    (private / ".reconciler/store/results" / gone[:2] / f"{gone}.json").unlink()
    with ResultStore(private / ".reconciler/store") as store:
        store.index.reindex()
    code, out, _ = run(private, "compare", "main@8bb4635", "main@201ffca")
    assert (code, out) == (
        2,
        """\
A  main@8bb4635         8bb4635cbf83  calc: accept negative numbers
B  main@201ffca         201ffca5799e  calc: a lone '-' is subtraction again

profile debug: 1 missing, 1 fixed, 8 unchanged-pass
  missing         tests/arith.t:chain     not run -> pass
  fixed           tests/arith.t:subtract  fail -> pass

profile default: 1 fixed, 9 unchanged-pass
  fixed           tests/arith.t:subtract  fail -> pass

gate: incomplete (exit 2); run `reconciler apply` for the missing results
""",
    )
    # A regression outranks missing results: it is already known to be real.
    code, out, _ = run(private, "compare", "baseline:v1.0", "main@8bb4635")
    assert code == 1
    assert "profile debug: 1 regression, 1 missing, 3 new, 5 unchanged-pass" in out.splitlines()


def test_a_later_attempt_with_another_verdict_is_flaky(run: Run, private: Path) -> None:
    _, document = compare_json(run, private, "main@8bb4635", "main@201ffca")
    flaky = _result_id(document, profile="default", subtest="add")
    with ResultStore(private / ".reconciler/store") as store:
        record = store.get_result(flaky)
        assert record is not None
        again = Attempt(status=Status.FAIL, duration=0.1, worker="another")
        store.put_result(record.model_copy(update={"attempts": [again]}))
    code, document = compare_json(run, private, "main@8bb4635", "main@201ffca")
    assert code == 0
    assert changes(document) == [
        ("debug", "tests/arith.t", "subtract", "fixed"),
        ("default", "tests/arith.t", "add", "flaky"),
        ("default", "tests/arith.t", "subtract", "fixed"),
    ]
    code, out, _ = run(private, "compare", "main@8bb4635", "main@201ffca", "--profile", "default")
    assert "  flaky           tests/arith.t:add       pass -> pass/fail" in out.splitlines()


def _build_of(farm: Path, *, commit: str, profile: str, run: Run) -> str:
    _, document = compare_json(run, farm, commit, commit)
    result = _result_id(document, profile=profile, subtest="add")
    with ResultStore(farm / ".reconciler/store") as store:
        record = store.get_result(result)
        assert record is not None
        return record.build


def test_explain_two_builds_of_one_commit_names_the_build_environment(
    run: Run, applied: Path
) -> None:
    default = _build_of(applied, commit="main@8bb4635", profile="default", run=run)
    debug = _build_of(applied, commit="main@8bb4635", profile="debug", run=run)
    code, out, err = run(applied, "explain", default[:8], debug[:12])
    assert (code, err) == (0, "")
    assert out.splitlines()[2:] == [
        "",
        "1 input differs: build environment changed",
        '  build.env.CFLAGS  "-O2" -> "-O0 -g"',
    ]
    code, out, _ = run(applied, "explain", default, debug, "--json")
    document = json.loads(out)
    assert document["phrases"] == ["build environment changed"]
    assert document["differences"] == [
        {
            "path": "build.env.CFLAGS",
            "phrase": "build environment changed",
            "a": "-O2",
            "b": "-O0 -g",
        }
    ]


def test_explain_a_result_shows_its_inputs_and_its_builds(run: Run, applied: Path) -> None:
    _, document = compare_json(run, applied, "baseline:v1.0", "main@8bb4635")
    result = _result_id(document, profile="debug", subtest="subtract")
    code, out, _ = run(applied, "explain", result[:10], "--json")
    assert code == 0
    explained = json.loads(out)
    assert (explained["kind"], explained["id"], explained["status"]) == ("result", result, "fail")
    inputs = explained["inputs"]
    assert (inputs["test"], inputs["subtest"]) == ("tests/arith.t", "subtract")
    assert inputs["build.env.CFLAGS"] == "-O0 -g"
    assert len(inputs["build.source_tree"]) == 40
    assert inputs["kind"] == "result"
    code, out, _ = run(applied, "explain", result[:10])
    lines = out.splitlines()
    assert lines[0] == f"result {result}  tests/arith.t:subtract (fail)"
    assert [line.split()[0] for line in lines[2:]] == sorted(inputs)
    # The same subtest a commit later: only the source differs, named as `plan` names it.
    _, later = compare_json(run, applied, "main@201ffca", "main@201ffca")
    fixed = _result_id(later, profile="debug", subtest="subtract")
    code, out, _ = run(applied, "explain", result, fixed)
    assert out.splitlines()[3] == "1 input differs: source changed"


def test_explain_refuses_unknown_short_and_mixed_identities(run: Run, applied: Path) -> None:
    _, document = compare_json(run, applied, "main", "main")
    result = _result_id(document, profile="debug", subtest="add")
    with ResultStore(applied / ".reconciler/store") as store:
        stored = store.get_result(result)
        assert stored is not None
        build = stored.build
    cases = {
        ("abc",): "error: 'abc' is not an identity",
        ("000000",): "error: no result or build starting with 000000",
        (result, build): "error: cannot compare a result with a build",
    }
    for argv, message in cases.items():
        code, out, err = run(applied, "explain", *argv)
        assert (code, out) == (1, "")
        assert err.startswith(message)


def test_an_ambiguous_prefix_lists_its_candidates(tmp_path: Path) -> None:
    # Two builds whose ids share 6 hex digits: a birthday search over ~4,000 preimages.
    seen: dict[str, Identity] = {}
    n = 0
    while True:
        identity = identity_of({"v": 1, "kind": "build", "source_tree": f"{n:040x}"})
        clash = seen.setdefault(identity.hex[:6], identity)
        if clash is not identity:
            break
        n += 1
    with ResultStore(tmp_path / "store") as store:
        for built in (clash, identity):
            store.put_build(
                BuildRecord(id=built.hex, preimage=dict(built.preimage), status=BuildStatus.PASS)
            )
        with pytest.raises(UserError) as raised:
            explain(store, identity.hex[:6])
        first, second = sorted((clash.hex, identity.hex))
        assert raised.value.message == (
            f"identity prefix {identity.hex[:6]} is ambiguous: "
            f"build {first[:16]}, build {second[:16]}"
        )
        assert explain(store, identity.hex[:12]).subject.id == identity.hex
