"""What a ktest tree's text says about dependencies and subtest names (core.ktest_deps)."""

from __future__ import annotations

import pytest

from reconciler.core.ktest_deps import (
    RequireGit,
    declared_dependencies,
    dependency_name,
    invalid_lines,
    traced_requirements,
)


@pytest.mark.parametrize(
    ("url", "directory", "name"),
    [
        # The rule of ktest's prelude.sh: basename of DIR, else of the URL without .git.
        ("https://evilpiepirate.org/git/bcachefs-tools.git", None, "bcachefs-tools"),
        ("http://evilpiepirate.org/git/xfstests.git", "xfstests", "xfstests"),
        ("http://evilpiepirate.org/git/xfstests.git", "../xfstests", "xfstests"),
        ("https://example.org/fio", None, "fio"),
        ("https://example.org/fio.git/", None, "fio"),
    ],
)
def test_dependency_names_follow_require_git(url: str, directory: str | None, name: str) -> None:
    assert dependency_name(url, directory) == name


def test_declared_dependencies_read_literal_lines_only() -> None:
    texts = {
        "tests/fs/fstests.sh": "require-git http://evilpiepirate.org/git/xfstests.git xfstests\n",
        "tests/fs/bcachefs/quota.ktest": (
            "#require-git http://evilpiepirate.org/git/old.git\n"
            "    require-git http://evilpiepirate.org/git/linuxquota.git  # indented, with a note\n"
            'require-git "$url"\n'
            "echo require-git http://not-a-call.example.org/x.git\n"
        ),
        "tests/fs/bcachefs/fsstress.ktest": (
            "require-git http://evilpiepirate.org/git/xfstests.git ../xfstests\n"
        ),
    }
    declared = declared_dependencies(texts)
    assert declared == (
        RequireGit(
            "tests/fs/bcachefs/fsstress.ktest",
            "http://evilpiepirate.org/git/xfstests.git",
            "../xfstests",
        ),
        RequireGit(
            "tests/fs/bcachefs/quota.ktest", "http://evilpiepirate.org/git/linuxquota.git", None
        ),
        RequireGit("tests/fs/fstests.sh", "http://evilpiepirate.org/git/xfstests.git", "xfstests"),
    )
    # Where older ktest code looks: beside the declaring file, DIR relative to it.
    assert [r.link_path for r in declared] == [
        "tests/fs/xfstests",
        "tests/fs/bcachefs/linuxquota",
        "tests/fs/xfstests",
    ]


def test_traced_calls_are_read_from_an_xtrace() -> None:
    trace = (
        "+ . /tmp/x/tests/prelude.sh\n"
        "++ require-git https://evilpiepirate.org/git/bcachefs-tools.git\n"
        "+++ require-git 'http://example.org/a b.git' xfstests\n"
        "++ local req=https://evilpiepirate.org/git/ignored.git\n"
        "++ require-git https://evilpiepirate.org/git/bcachefs-tools.git\n"
    )
    assert traced_requirements(trace) == (
        ("https://evilpiepirate.org/git/bcachefs-tools.git", None),
        ("http://example.org/a b.git", "xfstests"),
    )


def test_only_subtest_names_pass() -> None:
    lines = [
        "mount",
        "generic/001",
        "fsck_2.0",
        "",
        "Error 128 at /tmp/x/tests/prelude.sh 92 from: git clone $req $dir, exiting",
        "a/b/c",
        "../etc",
        "/abs",
        "has space",
        "-rf",
        "x" * 201,
    ]
    assert invalid_lines(lines) == lines[4:]
