"""The `reconciler` command on the default spec set and its quickstart repository: real git,
real SQLite store, real files; exit codes and output asserted as values."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.planning import Planner
from reconciler.cli.main import main
from reconciler.core.identity import ResultIdentities, result_preimage
from reconciler.model.desired import DesiredSlot, DesiredState, OriginKind
from reconciler.model.results import Attempt, ResultRecord, Status

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def desired_of(farm: Path) -> DesiredState:
    planner = Planner(git=GitResolver(farm / ".reconciler/git"), cache=MemoryEnumerationCache())
    return planner.desired(load_specs(farm / "specs"))


def store_results(
    farm: Path,
    *,
    which: Callable[[DesiredSlot], bool] = lambda slot: True,
    status: Status = Status.PASS,
) -> int:
    """Write a verdict for every subtest of the chosen slots, as a run would."""
    written = 0
    with ResultStore(farm / ".reconciler/store") as store:
        for slot in desired_of(farm).slots:
            if not which(slot):
                continue
            for unit in slot.units:
                identities = ResultIdentities(unit.preimage)
                for subtest in unit.subtests:
                    store.put_result(
                        ResultRecord(
                            id=identities.of(subtest),
                            unit=unit.unit,
                            build=slot.build.id,
                            test=unit.test,
                            subtest=subtest,
                            preimage=result_preimage(unit.preimage, subtest),
                            status=status,
                            duration=0.5,
                            attempts=[Attempt(status=status, duration=0.5, worker="local")],
                        )
                    )
                    written += 1
    return written


def test_validate_default_specs(run: Run, quickstart: Path) -> None:
    code, out, err = run("validate", "--specs", str(quickstart / "specs"))
    assert (code, err) == (0, "")
    assert out == (
        f"{quickstart / 'specs'}: valid (1 repos, 1 branches, 1 test groups, 2 profiles, "
        "1 baselines, 1 harnesses)\n"
    )
    assert not (quickstart / ".reconciler").exists(), "validating must create nothing"


def test_plan_of_the_default_set_on_an_empty_store(run: Run, quickstart: Path) -> None:
    code, out, _ = run("plan", "--specs", str(quickstart / "specs"), "--format", "json")
    assert code == 0
    plan = json.loads(out)
    # main: 6 commits x 2 profiles = 12 builds; the v1.0 baseline is main's second commit.
    # Subtests per commit: 3+3, 4+3, 5+4, 6+4, 6+4, 6+4 = 52, under two profiles.
    assert plan["builds"] == {"run": 12, "reused": 0, "blocked": 0}
    assert plan["results"] == {"run": 104, "reused": 0, "reused_from_baselines": 0, "blocked": 0}
    assert {(i["branch"], i["reason"]) for i in plan["items"]} == {
        ("main", "missing"),
        ("v1.0", "missing"),
    }


def test_baseline_results_once_stored_are_reused_from_baselines(run: Run, quickstart: Path) -> None:
    stored = store_results(quickstart, which=lambda s: s.origin.kind is OriginKind.BASELINE)
    assert stored == 14  # v1.0: arith 4 + errors 3, under two profiles
    code, out, _ = run("plan", "--specs", str(quickstart / "specs"), "--format", "json")
    assert code == 0
    plan = json.loads(out)
    assert plan["results"] == {"run": 90, "reused": 14, "reused_from_baselines": 14, "blocked": 0}
    reused = sorted(
        (i["branch"], i["commit"][:7], i["profile"], i["test"])
        for i in plan["items"]
        if i["reason"] == "reused-from-baseline"
    )
    assert reused == sorted(
        (branch, "8fea830", profile, test)
        for branch in ("main", "v1.0")
        for profile in ("debug", "default")
        for test in ("tests/arith.t", "tests/errors.t")
    )


def test_detailed_exitcode_is_2_with_work_and_0_without(run: Run, quickstart: Path) -> None:
    specs = str(quickstart / "specs")
    assert run("plan", "--specs", specs, "--detailed-exitcode")[0] == 2
    assert store_results(quickstart) == 104 + 14  # baseline units counted per slot here
    code, out, _ = run("plan", "--specs", specs, "--detailed-exitcode")
    assert code == 0
    assert out.splitlines()[0] == (
        "Plan: 0 builds to run, 12 reused; 0 results to run, 104 reused (14 from baselines); "
        "about 0.0 machine-hours."
    )
    assert "Nothing to do: the store holds every result the specs ask for." in out


def test_markdown_plan_starts_with_a_summary_and_collapses_details(
    run: Run, quickstart: Path
) -> None:
    code, out, _ = run("plan", "--specs", str(quickstart / "specs"), "--format", "markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("**Plan: 12 builds to run")
    assert "<details><summary>Per branch</summary>" in lines
    assert "<details><summary>28 test files to run (28 missing)</summary>" in lines


def _edit_spec(farm: Path, old: str, new: str, *, file: str = "quickstart.yaml") -> None:
    path = farm / "specs" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _line_of(farm: Path, needle: str, *, file: str) -> int:
    lines = (farm / "specs" / file).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


def test_a_ref_that_does_not_exist_names_the_spec_and_exits_1(run: Run, quickstart: Path) -> None:
    _edit_spec(quickstart, "ref: main", "ref: no-such-branch", file="branches.yaml")
    code, out, err = run("plan", "--specs", str(quickstart / "specs"))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1, err
    line = _line_of(quickstart, "kind: Branch", file="branches.yaml")
    where = f"{quickstart / 'specs/branches.yaml'}:{line}:1"
    assert err.startswith(f"error: {where}: Branch 'main'")
    assert "no-such-branch" in err
    assert "Traceback" not in err


def test_an_unreachable_repo_is_an_infrastructure_error(run: Run, quickstart: Path) -> None:
    _edit_spec(quickstart, "url: ../examples/quickstart/repo", "url: file:///nonexistent/repo.git")
    code, _, err = run("plan", "--specs", str(quickstart / "specs"))
    assert code == 3
    assert "Repo" in err or "quickstart" in err
    assert "file:///nonexistent/repo.git" in err
    assert "Traceback" not in err
    assert not list((quickstart / ".reconciler/git").glob("*")), "no partial mirror left"


def test_a_corrupt_index_is_rebuilt_not_fatal(run: Run, quickstart: Path) -> None:
    store_results(quickstart, which=lambda s: s.origin.kind is OriginKind.BASELINE)
    (quickstart / ".reconciler/store/index.sqlite").write_bytes(b"this is not a database" * 100)
    code, out, _ = run("plan", "--specs", str(quickstart / "specs"), "--format", "json")
    assert code == 0
    assert json.loads(out)["results"]["reused_from_baselines"] == 14


def test_an_unwritable_store_is_a_clear_infrastructure_error(
    run: Run, quickstart: Path, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "store-is-a-file"
    not_a_dir.write_text("occupied\n")
    code, out, err = run("plan", "--specs", str(quickstart / "specs"), "--store", str(not_a_dir))
    assert (code, out) == (3, "")
    assert str(not_a_dir) in err
    assert "Traceback" not in err
    assert not_a_dir.read_text() == "occupied\n"


def test_store_reindex_and_verify(run: Run, quickstart: Path) -> None:
    specs = str(quickstart / "specs")
    store_results(quickstart, which=lambda s: s.origin.kind is OriginKind.BASELINE)
    assert run("store", "verify", "--specs", specs)[:2] == (
        0,
        f"{quickstart / 'specs/../.reconciler/store'}: ok\n".replace("specs/../", ""),
    )
    code, out, _ = run("store", "reindex", "--specs", specs)
    assert (code, out) == (
        0,
        f"{quickstart / '.reconciler/store'}: reindexed 14 results, 0 builds\n",
    )
    victim = next((quickstart / ".reconciler/store/results").rglob("*.json"))
    victim.write_text(victim.read_text().replace('"pass"', '"fail"', 1).replace('"v": 1', '"v": 2'))
    code, out, err = run("store", "verify", "--specs", specs)
    assert code == 3
    assert victim.stem in out
    assert "problems in" in err


def test_store_comes_from_the_environment_when_not_given(
    run: Run, quickstart: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_STORE", str(tmp_path / "elsewhere"))
    assert run("store", "reindex", "--specs", str(quickstart / "specs"))[0] == 0
    assert (tmp_path / "elsewhere/index.sqlite").exists()
    assert not (quickstart / ".reconciler/store").exists()


def test_console_script_runs_as_a_process(quickstart: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--specs", str(quickstart / "specs")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.endswith("1 harnesses)\n")


def test_validate_lists_three_mistakes_in_two_files_and_exits_1(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "base.yaml").write_text(
        "kind: Repo\nname: linux\nurl: https://git.kernel.org/linux.git\n---\n"
        "kind: Harness\nname: h\ntype: command\nrun: sh {test}\n---\n"
        "kind: TestGroup\nname: core\nharness: h\ntests: ['t/*']\n---\n"
        "kind: Profile\nname: default\n"
    )
    (specs / "a.yaml").write_text(
        "kind: Branch\nname: main\nrepo: linux\nref: master\nmax_comits: 5\n"
        "test_groups: [core]\nprofiles: [default]\n"
    )
    (specs / "b.yaml").write_text(
        "kind: Branch\nname: next\nrepo: linux\nref: next\nmax_commits: lots\n"
        "test_groups: [core]\nprofiles: [default, kasn]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--specs", "specs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    lines = done.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "specs/a.yaml:5:1",
        "specs/b.yaml:5:14",
        "specs/b.yaml:7:21",
    ]
    assert "unknown key 'max_comits'" in lines[0] and "did you mean 'max_commits'" in lines[0]
    assert "invalid value for 'max_commits'" in lines[1]
    assert lines[2].endswith(
        "refers to unknown Profile 'kasn' (hint: known Profile names: default)"
    )
    assert not list(tmp_path.glob(".reconciler")), "validate creates nothing"


def test_detailed_exitcode_turns_every_error_into_1(run: Run, quickstart: Path) -> None:
    _edit_spec(quickstart, "url: ../examples/quickstart/repo", "url: file:///nonexistent/repo.git")
    assert run("plan", "--specs", str(quickstart / "specs"))[0] == 3
    assert run("plan", "--specs", str(quickstart / "specs"), "--detailed-exitcode")[0] == 1


def _commit_all(repo: Path, message: str) -> None:
    for args in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            check=True,
            capture_output=True,
        )


def test_plan_base_head_shows_a_pull_requests_work_as_markdown(run: Run, quickstart: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(quickstart)], check=True)
    (quickstart / ".gitignore").write_text(".reconciler/\nexamples/\n")
    _commit_all(quickstart, "specs")
    (quickstart / "specs/quickstart.yaml").write_text(
        (quickstart / "specs/quickstart.yaml").read_text()
        + '---\nkind: Profile\nname: o3\nbuild_env: {CFLAGS: "-O3"}\n'
    )
    _edit_spec(
        quickstart,
        "profiles: [default, debug]",
        "profiles: [default, debug, o3]",
        file="branches.yaml",
    )
    _commit_all(quickstart, "add o3")
    specs = str(quickstart / "specs")
    code, out, err = run(
        "plan",
        "--specs",
        specs,
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--format",
        "markdown",
        "--detailed-exitcode",
    )
    assert (code, err) == (2, "")
    assert out.splitlines()[0].startswith("**Plan: +6 builds, +52 results to run (~")
    assert "new profile" in out
    assert run("plan", "--specs", specs, "--base", "HEAD~1")[0] == 1
