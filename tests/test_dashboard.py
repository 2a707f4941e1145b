"""The dashboard without a browser: files, escaping, unchanged regeneration, page data.

One real farm (quickstart + a commit with markup in its subject and log, applied for real) is
shared by the module; each test writes its own site from it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.dashboard import DashboardReport, write_dashboard
from reconciler.app.planning import Planner, Workspace
from reconciler.cli.main import main
from tests.dashboard_farm import FAILING_COMMIT, LOG_SCRIPT, SUBJECT, applied_markup_farm


@pytest.fixture(scope="module")
def farm(quickstart_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    farm = tmp_path_factory.mktemp("dashboard") / "farm"
    shutil.copytree(quickstart_template, farm, symlinks=True)
    return farm, applied_markup_farm(farm)


def generate(farm: Path, out: Path) -> DashboardReport:
    workspace = Workspace.for_specs(farm / "specs")
    specs = load_specs(workspace.spec_dir)
    planner = Planner(
        git=GitResolver(workspace.git_cache, fetch=False),
        cache=SqliteEnumerationCache(workspace.enumeration_cache),
    )
    desired = planner.desired(specs)
    with ResultStore(workspace.store_dir) as store:
        return write_dashboard(out, specs=specs, desired=desired, store=store)


def test_every_page_has_its_json_and_the_report_lists_every_file(
    farm: tuple[Path, str], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    report = generate(farm[0], out)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert sorted(report.changed) == files
    assert report.removed == []
    pages = [p for p in files if p.suffix == ".html"]
    assert {str(p) for p in pages} >= {
        "index.html",
        "compare.html",
        "branches/main.html",
        f"commits/{FAILING_COMMIT}.html",
    }
    for page in pages:
        assert (out / page).with_suffix(".json").is_file(), page
    assert (out / "branches/main.svg").read_bytes().startswith(b"<?xml")
    assert len([p for p in files if p.parts[0] == "logs"]) > 0
    # The site is readable by a web server running as another user.
    assert (out.stat().st_mode & 0o755) == 0o755


def test_commit_page_data_shows_the_failure_and_where_it_last_passed(
    farm: tuple[Path, str], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    generate(farm[0], out)
    page = json.loads((out / f"commits/{FAILING_COMMIT}.json").read_text())
    failing = [row for row in page["rows"] if row["status"] == "fail"]
    assert [(r["profile"], r["test"], r["subtest"]) for r in failing] == [
        ("debug", "tests/arith.t", "subtract"),
        ("default", "tests/arith.t", "subtract"),
    ]
    # 3c52e3e (add division) is the newest older commit of main where subtract passed.
    assert {r["last_pass"]["commit"][:7] for r in failing} == {"3c52e3e"}
    assert all((out / "commits" / r["log_href"]).resolve().is_file() for r in failing)


def test_text_from_git_and_logs_is_escaped(farm: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "site"
    generate(farm[0], out)
    markup_commit = farm[1]
    html = "\n".join(p.read_text() for p in out.rglob("*.html"))
    assert "<script>window.__pwned" not in html
    assert "<b>markup</b>" not in html
    assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in html
    commit_html = (out / f"commits/{markup_commit}.html").read_text()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in commit_html
    # The only script a page loads is ours, from a file.
    assert commit_html.count("<script") == 1
    assert '<script src="../static/filter.js"></script>' in commit_html
    # Logs are published as they were stored, as text files.
    page = json.loads((out / f"commits/{markup_commit}.json").read_text())
    (row,) = [r for r in page["rows"] if r["subtest"] == "markup" and r["profile"] == "default"]
    assert LOG_SCRIPT.encode() in (out / "commits" / row["log_href"]).read_bytes()
    assert page["commit"]["subject"] == SUBJECT


def test_an_unchanged_store_rewrites_nothing(farm: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "site"
    generate(farm[0], out)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    site_inode = out.stat().st_ino
    again = generate(farm[0], out)
    assert again.changed == []
    assert again.removed == []
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert out.stat().st_ino == site_inode
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no staging left behind


def test_a_change_rewrites_only_what_changed_and_swaps_the_site_whole(
    farm: tuple[Path, str], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    generate(farm[0], out)
    index = out / "index.html"
    index.write_text("stale")
    (out / "branches" / "gone.html").write_text("a branch no longer tracked")
    kept = out / "branches" / "main.html"
    kept_inode = kept.stat().st_ino
    report = generate(farm[0], out)
    assert report.changed == [Path("index.html")]
    assert report.removed == [Path("branches/gone.html")]
    assert index.read_text() != "stale"
    assert not (out / "branches" / "gone.html").exists()
    assert kept.stat().st_ino == kept_inode  # hard-linked into the new site, not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_cli_writes_the_site(
    farm: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "site"
    argv = ["dashboard", "--specs", str(farm[0] / "specs"), "--out", str(out), "--no-fetch"]
    assert main(argv) == 0
    assert "files written" in capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == f"{out}: up to date\n"


def test_the_compare_page_uses_reconciler_compare(farm: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "site"
    generate(farm[0], out)
    (comparison,) = json.loads((out / "compare.json").read_text())["comparisons"]
    assert (comparison["branch"], comparison["baseline"]) == ("main", "v1.0")
    assert comparison["head"] == farm[1]
    # The markup test exists only at the head: "new", as `reconciler compare` says.
    for profile in comparison["profiles"]:
        assert profile["changes"]["new"][-1] == {
            "test": "tests/markup.t",
            "subtest": "markup",
            "baseline": None,
            "head": "fail",
        }
        assert profile["counts"]["regression"] == 0
    assert "class-new" in (out / "compare.html").read_text()


def test_a_symlinked_site_directory_is_published_where_it_points(
    farm: tuple[Path, str], tmp_path: Path
) -> None:
    (tmp_path / "srv").mkdir()
    target = tmp_path / "srv" / "ci"
    link = tmp_path / "www"
    link.symlink_to(target, target_is_directory=True)
    generate(farm[0], link)
    (target / "index.html").write_text("stale")
    assert generate(farm[0], link).changed == [Path("index.html")]  # swapped in beside target
    assert link.is_symlink()
    assert (target / "index.html").read_text() != "stale"
    assert sorted(p.name for p in (tmp_path / "srv").iterdir()) == ["ci"]
