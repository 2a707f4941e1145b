"""The ktest harness on the real ktest tree of shared/data/ktest-sample (see tests/ktest_sample.py).

With its dependencies provisioned, what the reconciler plans for each file equals running the
file's `list-tests` by hand; a file whose hand listing is not a clean list of subtest names is
blocked, quoting it. Planned with HOME read-only and no network route, nothing outside the
reconciler's own directories is touched, no line that is not a subtest is planned, and every
failing file is named with its reason while the rest is planned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.app.planning import Planner
from reconciler.cli.main import main
from reconciler.core.ktest_deps import SUBTEST_NAME
from reconciler.model.desired import BlockReason, DesiredState
from tests.ktest_sample import SampleFarm, hand_listings, make_farm

pytestmark = pytest.mark.slow

# What each sample file asks `require-git` for while it is listed (xtrace of the listing).
USES = {
    "tests/fs/bcachefs/32bit.ktest": ["bcachefs-tools"],
    "tests/fs/bcachefs/benches.ktest": ["bcachefs-tools"],
    "tests/fs/bcachefs/dkms.ktest": [],  # its require-git runs only when ktest_interactive
    "tests/fs/bcachefs/ec.ktest": ["bcachefs-tools"],
    "tests/fs/bcachefs/fsstress.ktest": ["bcachefs-tools", "xfstests"],
    "tests/fs/bcachefs/fstests.ktest": ["bcachefs-tools", "xfstests"],
    "tests/fs/bcachefs/kasan-single_device.ktest": ["bcachefs-tools"],
    "tests/fs/bcachefs/quota.ktest": ["bcachefs-tools", "linuxquota"],
    "tests/fs/bcachefs/replication.ktest": ["bcachefs-tools"],
    "tests/fs/bcachefs/single_device.ktest": ["bcachefs-tools"],
    "tests/fs/bcachefs/units.ktest": ["bcachefs-tools"],
}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> SampleFarm:
    return make_farm(tmp_path_factory.mktemp("ktest-sample"))


def write_specs(directory: Path, text: str) -> Path:
    specs = directory / "specs"
    specs.mkdir(parents=True)
    (specs / "farm.yaml").write_text(text)
    return specs


def plan_desired(farm: SampleFarm, tmp_path: Path, **spec: object) -> DesiredState:
    specs = write_specs(tmp_path, farm.spec_text(**spec))  # type: ignore[arg-type]
    with SqliteEnumerationCache(tmp_path / "store" / "cache" / "enumeration.sqlite") as cache:
        planner = Planner(
            git=GitResolver(tmp_path / "git"),
            cache=cache,
            dependency_root=tmp_path / "store" / "cache" / "trees",
        )
        return planner.desired(load_specs(specs))


@pytest.mark.parametrize("ref", ["master", "with-cross-conf"])
def test_the_plan_equals_the_hand_listing_file_by_file(
    farm: SampleFarm, tmp_path: Path, ref: str
) -> None:
    hand = hand_listings(farm, ref=ref, workdir=tmp_path / "hand")
    assert len(hand) == 12
    desired = plan_desired(farm, tmp_path, ref=ref)
    (slot,) = desired.slots
    planned = {unit.test: unit for unit in slot.units}
    blocked = {item.test: item for item in desired.blocked}
    trees = {name: git_tree(repo) for name, repo in farm.deps.items()}

    for test, listing in hand.items():
        if listing.valid:
            assert test not in blocked, test
            assert planned[test].subtests == listing.lines, test
            used = planned[test].preimage["harness"].get("dependencies", {})
            assert used == {name: trees[name] for name in USES[test]}, test
        else:
            assert test not in planned, test
            assert blocked[test].reason is BlockReason.LISTING_FAILED, test
            bad = [line for line in listing.lines if not SUBTEST_NAME.fullmatch(line)]
            if bad:
                # Quoted with the checkout it ran in named, not its temporary path.
                shown = bad[0].replace(str(tmp_path / "hand" / "tree"), "<checkout>")
                assert repr(shown) in blocked[test].message, test
    assert set(planned) | set(blocked) == set(hand)
    # The sample's own gaps, seen by hand and by the reconciler alike.
    assert not hand["tests/fs/bcachefs/275.ktest"].valid  # sources nothing: no main
    assert hand["tests/fs/bcachefs/fstests.ktest"].valid is (ref == "with-cross-conf")
    assert hand["tests/fs/bcachefs/kasan-single_device.ktest"].valid is (ref == "with-cross-conf")
    if ref == "with-cross-conf":
        assert len(planned["tests/fs/bcachefs/fstests.ktest"].subtests) > 500  # generic/001 …
        assert len(planned["tests/fs/bcachefs/kasan-single_device.ktest"].subtests) == 81


def git_tree(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD^{tree}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_an_xfstests_bump_replans_only_the_files_that_use_it(
    farm: SampleFarm, tmp_path: Path
) -> None:
    before = plan_desired(farm, tmp_path / "before", ref="with-cross-conf")
    bumped = tmp_path / "xfstests"
    subprocess.run(["git", "clone", "-q", str(farm.deps["xfstests"]), str(bumped)], check=True)
    (bumped / "README.reconciler").write_text("a new upstream commit\n")
    subprocess.run(["git", "-C", str(bumped), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(bumped),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "bump",
        ],
        check=True,
    )
    urls = {name: str(path) for name, path in farm.deps.items()} | {"xfstests": str(bumped)}
    after = plan_desired(farm, tmp_path / "after", ref="with-cross-conf", dependencies=urls)
    (old,), (new,) = before.slots, after.slots
    old_units = {unit.test: unit.unit for unit in old.units}
    new_units = {unit.test: unit.unit for unit in new.units}
    changed = sorted(test for test in old_units if old_units[test] != new_units[test])
    assert changed == ["tests/fs/bcachefs/fsstress.ktest", "tests/fs/bcachefs/fstests.ktest"]


def run_sandboxed(argv: list[str], *, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`argv` in its own mount and network namespaces: HOME mounted read-only, and no network
    route at all (only a loopback that is down)."""
    script = 'mount --bind "$HOME" "$HOME" && mount -o remount,bind,ro "$HOME" && exec "$@"'
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECONCILER")}
    return subprocess.run(
        ["unshare", "--mount", "--net", "sh", "-c", script, "sh", *argv],
        cwd=cwd,
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def home_contents(home: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(home)), p.stat().st_mtime_ns) for p in home.rglob("*"))


@pytest.mark.parametrize(
    ("pinned", "planned_files"),
    [
        # Only bcachefs-tools can be had (a local mirror); xfstests and linuxquota are pinned at
        # their real URLs, which cannot be reached.
        (
            "bcachefs-tools",
            {"32bit", "benches", "dkms", "ec", "replication", "single_device", "units"},
        ),
        # No dependency pinned at all: only the file that needs none is planned.
        ("", {"dkms"}),
    ],
    ids=["one-dependency-reachable", "none-pinned"],
)
def test_plan_with_a_read_only_home_and_no_network(
    farm: SampleFarm, tmp_path: Path, pinned: str, planned_files: set[str]
) -> None:
    dependencies = (
        {
            "bcachefs-tools": str(farm.deps["bcachefs-tools"]),
            **{
                name: url
                for name, url in {
                    "xfstests": "http://evilpiepirate.org/git/xfstests.git",
                    "linuxquota": "http://evilpiepirate.org/git/linuxquota.git",
                }.items()
            },
        }
        if pinned
        else {}
    )
    specs = write_specs(tmp_path, farm.spec_text(dependencies=dependencies))
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "untouched").write_text("a file the plan must leave alone\n")
    before = home_contents(home)
    reconciler = str(Path(sys.executable).parent / "reconciler")
    done = run_sandboxed(
        [reconciler, "plan", "--specs", str(specs), "--format", "json"], home=home, cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr  # partly blocked, documented as exit 1
    assert done.stderr == ""
    plan = json.loads(done.stdout)
    assert home_contents(home) == before
    assert not (home / ".ktest").exists()

    names = {item["test"].rsplit("/", 1)[1].removesuffix(".ktest") for item in plan["items"]}
    assert names == planned_files
    for item in plan["items"]:
        assert item["to_run"] and all(SUBTEST_NAME.fullmatch(name) for name in item["to_run"])
    blocked = {
        entry["test"].rsplit("/", 1)[1].removesuffix(".ktest"): entry for entry in plan["blocked"]
    }
    assert set(blocked) | names == {Path(t).name.removesuffix(".ktest") for t in USES} | {"275"}
    assert blocked["275"]["reason"] == "listing-failed"
    assert "named no subtest" in blocked["275"]["message"]
    if pinned:
        assert blocked["kasan-single_device"]["reason"] == "listing-failed"
        assert "'Error 1 at " in blocked["kasan-single_device"]["message"]
        for name, dependency in (
            ("fsstress", "xfstests"),
            ("fstests", "xfstests"),
            ("quota", "linuxquota"),
        ):
            assert blocked[name]["reason"] == "dependency-unresolved"
            message = blocked[name]["message"]
            assert f"needs dependency '{dependency}' (http://evilpiepirate.org/git/" in message
            assert "at 'master'), which did not resolve: cannot fetch" in message
    else:
        assert blocked["ec"]["reason"] == "dependency-unresolved"
        assert blocked["ec"]["message"].startswith(
            "needs dependency 'bcachefs-tools' (require-git"
            " https://evilpiepirate.org/git/bcachefs-tools.git), which harness 'ktest' does not"
            " pin"
        )


def test_the_cache_lives_in_the_store_and_a_command_clears_it(
    farm: SampleFarm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = write_specs(tmp_path, farm.spec_text(ref="with-cross-conf"))
    store = tmp_path / "store"
    assert main(["plan", "--specs", str(specs), "--store", str(store)]) == 1  # 275 is blocked
    assert (store / "cache" / "enumeration.sqlite").is_file()
    assert sorted(p.name for p in (store / "cache" / "trees").iterdir()) == sorted(
        git_tree(repo) for repo in farm.deps.values()
    )
    assert not (tmp_path / ".reconciler" / "cache").exists()
    with SqliteEnumerationCache(store / "cache" / "enumeration.sqlite") as cache:
        planner = Planner(
            git=GitResolver(tmp_path / ".reconciler" / "git"),
            cache=cache,
            dependency_root=store / "cache" / "trees",
        )
        planner.desired(load_specs(specs))
        assert (cache.hits, cache.misses) == (11, 1)  # every file but 275 came from the cache
    capsys.readouterr()

    assert main(["store", "clear-cache", "--specs", str(specs), "--store", str(store)]) == 0
    assert capsys.readouterr().out == (
        f"{store / 'cache'}: removed 11 cached listings and 3 dependency trees; results,"
        " builds and logs are untouched\n"
    )
    assert not (store / "cache" / "enumeration.sqlite").exists()
    assert not (store / "cache" / "trees").exists()


def test_blocked_files_are_on_the_dashboard(farm: SampleFarm, tmp_path: Path) -> None:
    specs = write_specs(tmp_path, farm.spec_text(ref="with-cross-conf"))
    site = tmp_path / "site"
    assert main(["dashboard", "--specs", str(specs), "--out", str(site)]) == 0
    page = json.loads((site / "branches" / "main.json").read_text())
    assert [(b["test"], b["reason"]) for b in page["blocked"]] == [
        ("tests/fs/bcachefs/275.ktest", "listing-failed")
    ]
    html = (site / "branches" / "main.html").read_text()
    assert "Blocked: not planned" in html
    assert "tests/fs/bcachefs/275.ktest" in html
    # The listing's own words reach the page as text, never as markup.
    assert "ends in `main &#34;$@&#34;`" in html or "ends in `main &quot;$@&quot;`" in html
