"""`validate` rejects build inputs no build uses (a `kconfig` on a `command` harness, a
toolchain where nothing is compiled) and compiler variables a toolchain decides, each at the
key it was written, instead of hashing them into identities that lie."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.adapters.spec_loader import load_specs
from reconciler.model.errors import SpecErrors

SPECS = """\
kind: Repo
name: project
url: https://example.org/project.git
---
kind: Harness
name: tap
type: command
build: make
run: sh {{test}}
---
kind: Harness
name: lint
type: command
run: sh {{test}}
---
kind: Harness
name: vm
type: vm
---
kind: TestGroup
name: unit
harness: {harness}
tests: ["tests/*.t"]
---
kind: TestGroup
name: boot
harness: vm
tests: ["vm/*.t"]
---
kind: Branch
name: main
repo: project
ref: main
test_groups: {groups}
profiles: [p]
---
kind: Profile
name: p
{profile}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages name files as `specs/farm.yaml`."""
    monkeypatch.chdir(tmp_path)


def write_specs(
    tmp_path: Path, *, profile: str, harness: str = "tap", groups: str = "[unit]"
) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    text = SPECS.format(harness=harness, groups=groups, profile=textwrap.dedent(profile))
    (specs / "farm.yaml").write_text(text)
    return Path("specs")


def line_of(specs: Path, start: str) -> int:
    """The 1-based line of farm.yaml that starts with `start`."""
    lines = (specs / "farm.yaml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.startswith(start))


def errors(specs: Path) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load_specs(specs)
    return str(caught.value).splitlines()


def test_kconfig_on_a_command_harness_is_a_validate_error_at_its_key(tmp_path: Path) -> None:
    specs = write_specs(tmp_path, profile="build_env: {CFLAGS: -O2}\nkconfig: [KASAN=y]\n")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--specs", "specs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert line_of(specs, "kconfig:") == 40
    assert done.stderr.splitlines() == [
        "error: specs/farm.yaml:40:1: `kconfig` of Profile 'p' is an input of no build:"
        " Branch 'main' runs it only where harness 'tap' (command) builds with its own"
        " `build` command and configures no kernel (hint: only `vm` harnesses (the kbuild"
        " recipe) configure a kernel from a profile: remove `kconfig` from this profile,"
        " or run its test groups on a `vm` harness)"
    ]
    assert not (tmp_path / ".reconciler").exists()


def test_base_config_where_ktest_configures_the_kernel_is_an_error(tmp_path: Path) -> None:
    specs = write_specs(tmp_path, profile="base_config: tinyconfig\n")
    specs.joinpath("farm.yaml").write_text(
        specs.joinpath("farm.yaml")
        .read_text()
        .replace("name: lint\ntype: command\nrun: sh {test}", "name: lint\ntype: ktest")
        .replace("harness: tap", "harness: lint")
    )
    (line,) = errors(specs)
    assert line.startswith(
        f"specs/farm.yaml:{line_of(specs, 'base_config')}:1:"
        " `base_config` of Profile 'p' is an input of no build"
    )
    assert "harness 'lint' (ktest) takes a kernel's config from its tests'" in line


def test_a_toolchain_where_nothing_is_compiled_is_an_error_but_the_default_is_not(
    tmp_path: Path,
) -> None:
    specs = write_specs(tmp_path, profile="toolchain: clang\n", harness="lint")
    assert line_of(specs, "toolchain:") == 39
    assert errors(specs) == [
        "specs/farm.yaml:39:1: `toolchain` of Profile 'p' is an input of no build: Branch 'main'"
        " runs it only where harness 'lint' (command) compiles nothing (it has no `build`"
        " command) (hint: a `command` or `fstests` harness compiles only through its `build`"
        " command: remove `toolchain` from this profile, or give the harness a `build` command)"
    ]
    assert load_specs(write_specs(tmp_path, profile="arch: x86_64\n", harness="lint"))


def test_inputs_some_harness_of_the_profile_uses_are_fine(tmp_path: Path) -> None:
    # The vm harness configures a kernel from kconfig; the command build just does not hold it.
    specs = write_specs(
        tmp_path, profile="kconfig: [KASAN=y]\ntoolchain: clang\n", groups="[unit, boot]"
    )
    assert load_specs(specs).profiles["p"].kconfig == ["KASAN=y"]


@pytest.mark.parametrize(
    ("profile", "where", "message"),
    [
        (
            "build_env: {CC: clang}\n",
            "specs/farm.yaml:39:12",
            "invalid value for 'build_env' in Profile 'p': build_env sets CC, which `toolchain`"
            " decides: write `toolchain: clang` (or gcc-N, clang-N, a path) instead",
        ),
        (
            "make_flags: [W=1, LLVM=1]\n",
            "specs/farm.yaml:39:13",
            "invalid value for 'make_flags' in Profile 'p': make_flags sets LLVM, which"
            " `toolchain` decides: write `toolchain: clang` (or gcc-N, clang-N, a path) instead",
        ),
        (
            "toolchain: 'gcc; reboot'\n",
            "specs/farm.yaml:39:12",
            "invalid value for 'toolchain' in Profile 'p': 'gcc; reboot' is not a toolchain a"
            " build can use: write gcc, gcc-N, clang, clang-N, an absolute path to a gcc or clang"
            " binary, or a Nix store path of a gcc or clang package",
        ),
    ],
)
def test_compiler_settings_outside_the_toolchain_are_errors(
    tmp_path: Path, profile: str, where: str, message: str
) -> None:
    (line,) = errors(write_specs(tmp_path, profile=profile))
    assert line.startswith(f"{where}: {message}"), line
