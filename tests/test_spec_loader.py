"""The spec loader: a valid directory becomes a SpecSet; every mistake is reported, located."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from reconciler.adapters.spec_loader import load_specs
from reconciler.model.errors import SpecErrors
from reconciler.model.specs import (
    Baseline,
    Branch,
    Harness,
    HarnessType,
    Profile,
    Repo,
    Runtime,
    TestGroup,
    WorkerHost,
    WorkerPool,
)
from reconciler.model.specset import SourceLocation

SPECS = Path("specs")

# Documents the error tests build on: every reference in BRANCH resolves against BASE.
BASE = """\
kind: Repo
name: linux
url: https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git
---
kind: Harness
name: ktest
type: ktest
url: https://evilpiepirate.org/git/ktest.git
ref: master
---
kind: TestGroup
name: core
harness: ktest
tests: ["fs/*.ktest"]
---
kind: Profile
name: default
---
kind: Profile
name: kasan
runtime: {env: {ktest_kasan: "1"}}
---
kind: Baseline
name: v7.0
repo: linux
ref: v7.0
test_groups: [core]
profiles: [default]
"""


@pytest.fixture
def spec_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding `specs/`, so messages name files as `specs/...`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / SPECS).mkdir()
    return tmp_path


def write(root: Path, relative: str, text: str) -> Path:
    path = root / SPECS / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_lines(spec_dir: Path = SPECS) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load_specs(spec_dir)
    return str(caught.value).splitlines()


def test_valid_multi_file_set_loads_into_the_expected_spec_set(spec_root: Path) -> None:
    write(
        spec_root,
        "farm.yaml",
        """\
        # comments and empty documents are fine
        ---
        ---
        kind: Repo
        name: local
        url: ../kernels/linux   # relative to this file
        fetch_url: git@mirror.example.org:linux.git
        ---
        kind: Harness
        name: ktest
        type: ktest
        url: ktest-checkout
        ref: master
        ---
        kind: WorkerPool
        name: farm
        hosts:
          - {host: farm1.example.org, user: ci, slots: 8, arch: aarch64}
          - host: b200.example.org
            tags: [nvme]
        """,
    )
    write(
        spec_root,
        "mm/mm.yml",
        """\
        kind: TestGroup
        name: core
        harness: ktest
        tests: ["fs/*.ktest"]
        exclude: ["fs/perf*.ktest"]
        priority: 10
        ---
        kind: Profile
        name: kasan
        # ktest builds KASAN kernels from its own ktest_kasan, not from a profile's kconfig.
        runtime: {mem: 8G, cpus: 4, env: {ktest_kasan: "1"}}
        ---
        kind: Baseline
        name: v7.0
        repo: local
        ref: v7.0
        test_groups: [core]
        profiles: [kasan]
        ---
        kind: Branch
        name: mm-next
        repo: local
        ref: mm-next
        max_commits: 50
        test_groups: [core]
        profiles: [kasan]
        baseline: v7.0
        """,
    )
    # Hidden directories and files, and other suffixes, are not specs.
    write(spec_root, ".git/config.yaml", "kind: [broken\n")
    write(spec_root, ".draft.yaml", "kind: [broken\n")
    write(spec_root, "README.md", "kind: [broken\n")

    spec_set = load_specs(SPECS)

    specs_dir = spec_root / SPECS
    assert spec_set.spec_dir == SPECS
    assert spec_set.repos == {
        "local": Repo(
            kind="Repo",
            name="local",
            url=str(spec_root / "kernels" / "linux"),
            fetch_url="git@mirror.example.org:linux.git",
        )
    }
    assert spec_set.harnesses == {
        "ktest": Harness(
            kind="Harness",
            name="ktest",
            type=HarnessType.KTEST,
            url=str(specs_dir / "ktest-checkout"),
            ref="master",
        )
    }
    assert spec_set.worker_pools == {
        "farm": WorkerPool(
            kind="WorkerPool",
            name="farm",
            hosts=[
                WorkerHost(host="farm1.example.org", user="ci", slots=8, arch="aarch64"),
                WorkerHost(host="b200.example.org", tags=["nvme"]),
            ],
        )
    }
    assert spec_set.test_groups == {
        "core": TestGroup(
            kind="TestGroup",
            name="core",
            harness="ktest",
            tests=["fs/*.ktest"],
            exclude=["fs/perf*.ktest"],
            priority=10,
        )
    }
    assert spec_set.profiles == {
        "kasan": Profile(
            kind="Profile",
            name="kasan",
            runtime=Runtime(mem="8G", cpus=4, env={"ktest_kasan": "1"}),
        )
    }
    assert spec_set.baselines == {
        "v7.0": Baseline(
            kind="Baseline",
            name="v7.0",
            repo="local",
            ref="v7.0",
            test_groups=["core"],
            profiles=["kasan"],
        )
    }
    assert spec_set.branches == {
        "mm-next": Branch(
            kind="Branch",
            name="mm-next",
            repo="local",
            ref="mm-next",
            max_commits=50,
            test_groups=["core"],
            profiles=["kasan"],
            baseline="v7.0",
        )
    }
    assert spec_set.locations == {
        ("Repo", "local"): SourceLocation("specs/farm.yaml", 4, 1),
        ("Harness", "ktest"): SourceLocation("specs/farm.yaml", 9, 1),
        ("WorkerPool", "farm"): SourceLocation("specs/farm.yaml", 15, 1),
        ("TestGroup", "core"): SourceLocation("specs/mm/mm.yml", 1, 1),
        ("Profile", "kasan"): SourceLocation("specs/mm/mm.yml", 8, 1),
        ("Baseline", "v7.0"): SourceLocation("specs/mm/mm.yml", 13, 1),
        ("Branch", "mm-next"): SourceLocation("specs/mm/mm.yml", 20, 1),
    }


def test_urls_with_a_scheme_scp_form_or_absolute_path_are_kept_as_written(
    spec_root: Path,
) -> None:
    write(
        spec_root,
        "repos.yaml",
        """\
        kind: Repo
        name: https
        url: https://git.kernel.org/linux.git
        ---
        kind: Repo
        name: scp
        url: git@github.com:torvalds/linux.git
        ---
        kind: Repo
        name: absolute
        url: /srv/git/linux.git
        ---
        kind: Repo
        name: dotted
        url: ./sub/../linux.git
        """,
    )
    urls = {name: repo.url for name, repo in load_specs(SPECS).repos.items()}
    assert urls == {
        "https": "https://git.kernel.org/linux.git",
        "scp": "git@github.com:torvalds/linux.git",
        "absolute": "/srv/git/linux.git",
        "dotted": str(spec_root / SPECS / "linux.git"),
    }


def test_three_mistakes_in_two_files_are_reported_together_in_file_and_line_order(
    spec_root: Path,
) -> None:
    write(spec_root, "base.yaml", BASE)
    write(
        spec_root,
        "a.yaml",
        """\
        kind: Branch
        name: main
        repo: linux
        max_comits: 5
        ref: master
        test_groups: [core]
        profiles: [default]
        """,
    )
    write(
        spec_root,
        "b.yaml",
        """\
        kind: Branch
        name: next
        repo: linux
        ref: next
        max_commits: lots
        test_groups: [core]
        profiles:
          - default
          - kasn
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:4:1: unknown key 'max_comits' in Branch 'main'"
        " (hint: did you mean 'max_commits'?)",
        "specs/b.yaml:5:14: invalid value for 'max_commits' in Branch 'next': Input should be a"
        " valid integer, unable to parse string as an integer (hint: write a whole number)",
        "specs/b.yaml:9:5: Branch 'next' refers to unknown Profile 'kasn'"
        " (hint: did you mean 'kasan'?)",
    ]


def test_syntax_error_is_located_and_other_files_are_still_checked(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)
    write(
        spec_root,
        "broken.yaml",
        """\
        kind: Profile
        name: debug
        ---
        kind: Branch
        name: main
        test_groups: [core
        profiles: [debug]
        """,
    )
    write(
        spec_root,
        "z.yaml",
        """\
        kind: Profile
        name: kasan2
        colour: blue
        """,
    )
    assert error_lines() == [
        "specs/broken.yaml:7:9: YAML syntax error: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence) (hint: fix the YAML syntax; documents after this"
        " point in the file were not read)",
        "specs/z.yaml:3:1: unknown key 'colour' in Profile 'kasan2' (hint: known keys: arch,"
        " base_config, build_env, description, kconfig, kind, make_flags, name, runtime,"
        " toolchain)",
    ]


def test_references_into_a_file_cut_short_by_a_syntax_error_say_so(spec_root: Path) -> None:
    write(spec_root, "a.yaml", "kind: Profile\nname: [debug\n")
    write(
        spec_root,
        "b.yaml",
        """\
        kind: Baseline
        name: v7.0
        repo: linux
        ref: v7.0
        test_groups: [core]
        profiles: [debug]
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:3:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence) (hint: fix the YAML syntax; documents after this"
        " point in the file were not read)",
        "specs/b.yaml:3:7: Baseline 'v7.0' refers to unknown Repo 'linux' (hint: no Repo is"
        " defined: add a document with 'kind: Repo' and 'name: linux' (specs/a.yaml could not"
        " be read and may define it))",
        "specs/b.yaml:5:15: Baseline 'v7.0' refers to unknown TestGroup 'core' (hint: no"
        " TestGroup is defined: add a document with 'kind: TestGroup' and 'name: core'"
        " (specs/a.yaml could not be read and may define it))",
        "specs/b.yaml:6:12: Baseline 'v7.0' refers to unknown Profile 'debug' (hint: no Profile"
        " is defined: add a document with 'kind: Profile' and 'name: debug' (specs/a.yaml could"
        " not be read and may define it))",
    ]


def test_duplicate_keys_are_reported_at_the_repeat_and_later_documents_still_read(
    spec_root: Path,
) -> None:
    write(
        spec_root,
        "a.yaml",
        """\
        kind: Profile
        name: kasan
        runtime:
          mem: 4G
          mem: 8G
        ---
        kind: Profile
        name: debug
        arch: x86-64
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:5:3: duplicate key 'mem' (hint: the first is at specs/a.yaml:4:3; keep one"
        " (only the first is used))",
        "specs/a.yaml:9:7: invalid value for 'arch' in Profile 'debug': String should match"
        " pattern '^[a-z0-9_]+$'",
    ]


def test_documents_that_are_not_specs(spec_root: Path) -> None:
    write(
        spec_root,
        "a.yaml",
        """\
        - kind: Repo
        ---
        just text
        ---
        name: orphan
        ---
        kind: branch
        name: main
        ---
        kind: Workers
        name: farm
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:1:1: a spec document must be a mapping, not a list (hint: start the"
        " document with 'kind: <Kind>' and 'name: <name>' lines)",
        "specs/a.yaml:3:1: a spec document must be a mapping, not the value 'just text' (hint:"
        " start the document with 'kind: <Kind>' and 'name: <name>' lines)",
        "specs/a.yaml:5:1: document has no 'kind' (hint: add 'kind:' with one of Baseline,"
        " Branch, Harness, Profile, Repo, TestGroup, WorkerPool)",
        "specs/a.yaml:7:7: unknown kind 'branch' (hint: did you mean 'Branch'? known kinds:"
        " Baseline, Branch, Harness, Profile, Repo, TestGroup, WorkerPool)",
        "specs/a.yaml:10:7: unknown kind 'Workers' (hint: did you mean 'WorkerPool'? known"
        " kinds: Baseline, Branch, Harness, Profile, Repo, TestGroup, WorkerPool)",
    ]


def test_nested_mistakes_point_at_the_nested_key_value_or_mapping(spec_root: Path) -> None:
    write(
        spec_root,
        "a.yaml",
        """\
        kind: Profile
        name: kasan
        runtime:
          memory: 8G
          cpus: many
        ---
        kind: WorkerPool
        name: farm
        hosts:
          - host: farm1
          - slots: 0
            port: 22
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:4:3: unknown key 'runtime.memory' in Profile 'kasan'"
        " (hint: did you mean 'mem'?)",
        "specs/a.yaml:5:9: invalid value for 'runtime.cpus' in Profile 'kasan': Input should be"
        " a valid integer, unable to parse string as an integer (hint: write a whole number)",
        "specs/a.yaml:11:5: missing required key 'hosts[1].host' in WorkerPool 'farm'"
        " (hint: add 'host:')",
        "specs/a.yaml:11:12: invalid value for 'hosts[1].slots' in WorkerPool 'farm': Input"
        " should be greater than or equal to 1 (hint: use a value of at least 1)",
    ]


def test_missing_keys_and_bad_values_at_the_top_level(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)
    write(
        spec_root,
        "a.yaml",
        """\
        kind: Branch
        name: main
        ref: a..b
        test_groups: core
        profiles: []
        ---
        kind: Repo
        name: 7.0
        url: x
        ---
        kind: Harness
        name: runner
        type: comand
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:1:1: missing required key 'repo' in Branch 'main' (hint: add 'repo:')",
        "specs/a.yaml:3:6: invalid value for 'ref' in Branch 'main': 'a..b' is not a valid git"
        " ref (see git-check-ref-format): use a branch, tag or full commit id (hint: Branch"
        " name in the repo (e.g. `bcachefs-testing` or `refs/heads/main`).)",
        "specs/a.yaml:4:14: invalid value for 'test_groups' in Branch 'main': Input should be a"
        " valid list (hint: write a list: [a, b], or one '- item' per line)",
        "specs/a.yaml:5:11: invalid value for 'profiles' in Branch 'main': List should have at"
        " least 1 item after validation, not 0 (hint: list at least 1 item)",
        "specs/a.yaml:8:7: invalid value for 'name' in Repo document: Input should be a valid"
        ' string (hint: quote the value so YAML reads it as text (e.g. "7.0" rather than 7.0))',
        "specs/a.yaml:13:7: invalid value for 'type' in Harness 'runner': Input should be"
        " 'command', 'ktest', 'fstests', 'kselftest' or 'vm' (hint: did you mean 'command'? use"
        " one of: command, ktest, fstests, kselftest, vm)",
    ]


def test_checks_across_fields_are_reported_at_the_document(spec_root: Path) -> None:
    write(spec_root, "a.yaml", "# the harness\nkind: Harness\nname: ktest\ntype: ktest\nurl: x\n")
    assert error_lines() == [
        "specs/a.yaml:2:1: invalid Harness 'ktest': a harness with a url needs a ref to pin it to",
    ]


def test_bad_tagged_value_and_non_text_key_are_located(spec_root: Path) -> None:
    write(
        spec_root,
        "a.yaml",
        """\
        kind: Profile
        name: kasan
        runtime: {env: {1: x}}
        ---
        kind: TestGroup
        name: core
        harness: ktest
        tests: [a]
        timeout: !!int soon
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:3:17: key 1 under 'runtime.env' in Profile 'kasan' is not text"
        ' (hint: quote the key: "1":)',
        "specs/a.yaml:9:10: YAML syntax error: cannot read this value: invalid literal for int()"
        " with base 10: 'soon' (hint: fix the YAML syntax; documents after this point in the"
        " file were not read)",
    ]


def test_unreadable_yaml_is_reported_not_raised(spec_root: Path) -> None:
    write(spec_root, "a.yaml", "kind: Profile\nname: x\n? [a, b]\n: 1\n")
    write(spec_root, "b.yaml", "kind: Profile\nname: y\x07\n")
    write(spec_root, "c.yaml", "kind: Profile\nname: z\nkconfig: " + "[" * 600 + "\n")
    write(spec_root, "d.yaml", "kind:\nname: w\n")
    assert error_lines() == [
        "specs/a.yaml:3:3: key \"('a', 'b')\" in Profile 'x' is not text"
        " (hint: quote the key: \"('a', 'b')\":)",
        "specs/b.yaml:2:8: YAML syntax error: special characters are not allowed"
        " (hint: remove the control character; specs are UTF-8 text)",
        "specs/c.yaml:1:1: YAML nesting is too deep to read"
        " (hint: specs nest a few levels at most: look for unbalanced brackets)",
        "specs/d.yaml:1:1: document has no 'kind' (hint: add 'kind:' with one of Baseline,"
        " Branch, Harness, Profile, Repo, TestGroup, WorkerPool)",
    ]


def test_duplicate_names_of_one_kind_across_files(spec_root: Path) -> None:
    write(spec_root, "a.yaml", "kind: Profile\nname: kasan\n---\nkind: Repo\nname: kasan\nurl: x\n")
    write(spec_root, "sub/b.yaml", "# again\nkind: Profile\nname: kasan\narch: arm64\n")
    assert error_lines() == [
        "specs/sub/b.yaml:2:1: duplicate Profile 'kasan' (hint: the first is at"
        " specs/a.yaml:1:1; names must be unique per kind: rename or remove one)",
    ]


def test_every_reference_field_is_checked_at_the_referring_value(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)
    write(
        spec_root,
        "refs.yaml",
        """\
        kind: Branch
        name: main
        repo: linu
        ref: master
        test_groups: [core, mm]
        profiles:
          - default
          - kasam
        baseline: v6.0
        ---
        kind: Baseline
        name: v6.0-rc1
        repo: stable
        ref: v6.0-rc1
        test_groups: [xfstests]
        profiles: [lockdep]
        ---
        kind: TestGroup
        name: mm
        harness: ltp
        tests: [mm]
        """,
    )
    assert error_lines() == [
        "specs/refs.yaml:3:7: Branch 'main' refers to unknown Repo 'linu'"
        " (hint: did you mean 'linux'?)",
        "specs/refs.yaml:8:5: Branch 'main' refers to unknown Profile 'kasam'"
        " (hint: did you mean 'kasan'?)",
        "specs/refs.yaml:9:11: Branch 'main' refers to unknown Baseline 'v6.0'"
        " (hint: did you mean 'v7.0'?)",
        "specs/refs.yaml:13:7: Baseline 'v6.0-rc1' refers to unknown Repo 'stable'"
        " (hint: known Repo names: linux)",
        "specs/refs.yaml:15:15: Baseline 'v6.0-rc1' refers to unknown TestGroup 'xfstests'"
        " (hint: known TestGroup names: core, mm)",
        "specs/refs.yaml:16:12: Baseline 'v6.0-rc1' refers to unknown Profile 'lockdep'"
        " (hint: known Profile names: default, kasan)",
        "specs/refs.yaml:20:10: TestGroup 'mm' refers to unknown Harness 'ltp'"
        " (hint: known Harness names: ktest)",
    ]


def test_a_name_listed_twice_is_reported_at_the_repeat(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)
    write(
        spec_root,
        "a.yaml",
        """\
        kind: Branch
        name: main
        repo: linux
        ref: master
        test_groups: [core]
        profiles: [default, kasan, default]
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:6:28: Branch 'main' lists Profile 'default' twice in profiles"
        " (hint: the first is at specs/a.yaml:6:12; remove the repeat)",
    ]


def test_an_invalid_document_still_defines_its_name_for_references(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)
    write(
        spec_root,
        "a.yaml",
        """\
        kind: Profile
        name: debug
        toolchian: gcc-14
        ---
        kind: Branch
        name: main
        repo: linux
        ref: master
        test_groups: [core]
        profiles: [debug]
        """,
    )
    assert error_lines() == [
        "specs/a.yaml:3:1: unknown key 'toolchian' in Profile 'debug'"
        " (hint: did you mean 'toolchain'?)",
    ]


def test_missing_or_empty_spec_directory(spec_root: Path) -> None:
    assert error_lines(Path("nowhere")) == [
        "spec directory 'nowhere' does not exist"
        " (hint: pass the directory holding your YAML specs (e.g. --specs specs))",
    ]
    write(spec_root, "only-comments.yaml", "# nothing yet\n---\n")
    write(spec_root, ".hidden.yaml", "kind: Repo\nname: x\nurl: y\n")
    assert error_lines() == [
        "no spec documents in 'specs' (hint: add YAML files (*.yaml, *.yml) holding documents"
        " that start with 'kind:' (one of Baseline, Branch, Harness, Profile, Repo, TestGroup,"
        " WorkerPool) and 'name:')",
    ]


def test_file_names_keep_an_absolute_spec_directory_absolute(spec_root: Path) -> None:
    write(spec_root, "a.yaml", "kind: Profile\nname: x\narch: X\n")
    assert error_lines(spec_root / SPECS) == [
        f"{spec_root}/specs/a.yaml:3:7: invalid value for 'arch' in Profile 'x': String should"
        " match pattern '^[a-z0-9_]+$'",
    ]


def test_a_file_that_is_not_utf8_is_located_at_the_bad_byte(spec_root: Path) -> None:
    (spec_root / SPECS / "a.yaml").write_bytes(b"kind: Profile\nname: caf\xe9\n")
    assert error_lines() == [
        "specs/a.yaml:2:10: spec file is not UTF-8 text (hint: save the file as UTF-8)",
    ]


def test_loading_creates_nothing_on_disk(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)

    def listing() -> list[tuple[str, int]]:
        """Every path under the spec directory's parent, with its modification time."""
        return sorted(
            (os.path.relpath(path, spec_root), os.stat(path).st_mtime_ns)
            for directory, subdirectories, files in os.walk(spec_root)
            for path in (os.path.join(directory, name) for name in [*subdirectories, *files])
        )

    before = listing()
    load_specs(SPECS)
    assert listing() == before

    write(spec_root, "bad.yaml", "kind: Branch\nname: main\n")
    before = listing()
    with pytest.raises(SpecErrors):
        load_specs(SPECS)
    assert listing() == before


def test_hundreds_of_files_load(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)
    for index in range(300):
        write(
            spec_root,
            f"branches/b{index:03}.yaml",
            f"kind: Branch\nname: b{index}\nrepo: linux\nref: b{index}\n"
            "test_groups: [core]\nprofiles: [default, kasan]\nbaseline: v7.0\n",
        )
    spec_set = load_specs(SPECS)
    assert len(spec_set.branches) == 300
    assert spec_set.locations[("Branch", "b299")] == SourceLocation(
        "specs/branches/b299.yaml", 1, 1
    )


def test_expunge_files_are_relative_to_their_spec_file(spec_root: Path) -> None:
    write(spec_root, "base.yaml", BASE)
    write(
        spec_root,
        "fstests/xfs.yaml",
        """\
        kind: TestGroup
        name: xfs-auto
        harness: ktest
        tests: ["tests/*"]
        select: [auto]
        expunges: [expunges/xfs.txt, /etc/expunges/all.txt]
        """,
    )
    group = load_specs(spec_root / SPECS).test_groups["xfs-auto"]
    assert group.expunges == [
        str(spec_root / SPECS / "fstests/expunges/xfs.txt"),
        "/etc/expunges/all.txt",
    ]
