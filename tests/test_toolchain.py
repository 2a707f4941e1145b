"""Toolchains: names parsed into the binaries they stand for, resolved to the concrete compiler
with Debian's real gcc and clang, applied per recipe, and a host's compiler judged against the
identity."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reconciler.adapters.toolchain_probe import probe_toolchain, resolve_toolchains
from reconciler.core import toolchain as tc
from reconciler.core.identity import BUILD_RECIPES
from reconciler.model.desired import ResolvedToolchain

STORE_GCC = "/nix/store/" + "a" * 32 + "-gcc-wrapper-13.2.0"
STORE_CLANG = "/nix/store/" + "b" * 32 + "-clang-17.0.6"


def version_of(binary: str) -> str:
    """The first line of `binary --version`, read here as any user would."""
    output = subprocess.run(
        [binary, "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={"LC_ALL": "C", "PATH": os.environ["PATH"]},
    ).stdout
    return output.splitlines()[0].strip()


@pytest.mark.parametrize(
    ("name", "cc", "cxx", "llvm", "store_path"),
    [
        ("gcc", "gcc", "g++", None, None),
        ("gcc-12", "gcc-12", "g++-12", None, None),
        ("clang", "clang", "clang++", "1", None),
        ("clang-14", "clang-14", "clang++-14", "-14", None),
        ("/usr/bin/gcc-12", "/usr/bin/gcc-12", "/usr/bin/g++-12", None, None),
        (
            "/opt/llvm/bin/clang",
            "/opt/llvm/bin/clang",
            "/opt/llvm/bin/clang++",
            "/opt/llvm/bin/",
            None,
        ),
        (STORE_GCC, f"{STORE_GCC}/bin/gcc", f"{STORE_GCC}/bin/g++", None, STORE_GCC),
        (
            STORE_CLANG,
            f"{STORE_CLANG}/bin/clang",
            f"{STORE_CLANG}/bin/clang++",
            f"{STORE_CLANG}/bin/",
            STORE_CLANG,
        ),
        (f"{STORE_GCC}/bin/gcc", f"{STORE_GCC}/bin/gcc", f"{STORE_GCC}/bin/g++", None, STORE_GCC),
    ],
)
def test_a_name_stands_for_these_binaries(
    name: str, cc: str, cxx: str, llvm: str | None, store_path: str | None
) -> None:
    request = tc.parse_toolchain(name)
    assert (request.cc, request.cxx, request.llvm, request.store_path) == (
        cc,
        cxx,
        llvm,
        store_path,
    )


@pytest.mark.parametrize(
    "name",
    [
        "icc",
        "gcc; reboot",
        "clang-",
        "bin/gcc",
        "/usr/bin/cc",
        "gcc-12 -v",
        "$(reboot)",
        "/nix/store/short-gcc",
    ],
)
def test_a_name_no_recipe_can_use_is_refused(name: str) -> None:
    with pytest.raises(tc.ToolchainNameError, match="use gcc, gcc-N, clang, clang-N"):
        tc.parse_toolchain(name)


@pytest.mark.parametrize(
    ("name", "ccache", "variables"),
    [
        ("gcc", False, ("CC=gcc", "HOSTCC=gcc")),
        ("gcc", True, ("CC=ccache gcc", "HOSTCC=gcc")),
        ("gcc-12", False, ("CC=gcc-12", "HOSTCC=gcc-12")),
        ("clang", False, ("LLVM=1", "CC=clang", "HOSTCC=clang")),
        ("clang-17", True, ("LLVM=-17", "CC=ccache clang-17", "HOSTCC=clang-17")),
        ("/opt/cross/bin/gcc", False, ("CC=/opt/cross/bin/gcc", "HOSTCC=/opt/cross/bin/gcc")),
        (
            STORE_CLANG,
            False,
            (
                f"LLVM={STORE_CLANG}/bin/",
                f"CC={STORE_CLANG}/bin/clang",
                f"HOSTCC={STORE_CLANG}/bin/clang",
            ),
        ),
    ],
)
def test_kbuild_gets_llvm_cc_and_hostcc_from_one_toolchain(
    name: str, ccache: bool, variables: tuple[str, ...]
) -> None:
    assert tc.make_variables(tc.parse_toolchain(name), ccache=ccache) == variables


def test_every_recipe_applies_the_toolchain_its_own_way() -> None:
    assert {recipe["recipe"] for recipe in BUILD_RECIPES.values()} == set(tc.RECIPE_APPLICATION)
    clang = tc.parse_toolchain("clang")
    assert tc.applied(clang, recipe="command") == tc.Applied({"CC": "clang", "CXX": "clang++"})
    assert tc.applied(clang, recipe="ktest-kernel") == tc.Applied({"CC": "clang", "CXX": "clang++"})
    assert tc.applied(clang, recipe="kernel") == tc.Applied(
        {"CC": "clang", "CXX": "clang++"}, ("LLVM=1", "CC=clang", "HOSTCC=clang")
    )
    assert tc.applied(clang, recipe="kbuild", ccache=True) == tc.Applied(
        {}, ("LLVM=1", "CC=ccache clang", "HOSTCC=clang")
    )


def test_the_identity_value_is_the_concrete_compiler() -> None:
    resolved = ResolvedToolchain("clang", version="Debian clang version 14.0.6")
    assert tc.toolchain_identity(resolved) == {
        "name": "clang",
        "version": "Debian clang version 14.0.6",
    }
    # A store path pins its content: no version, so no planning host has to probe it.
    assert tc.toolchain_identity(
        ResolvedToolchain(STORE_GCC, version="gcc (GCC) 13.2.0", store_path=STORE_GCC)
    ) == {"name": STORE_GCC, "store_path": STORE_GCC}
    with pytest.raises(ValueError, match="not resolved"):
        tc.toolchain_identity(ResolvedToolchain("gcc-99", problem="gcc-99 is not installed"))
    assert tc.toolchain_label({"name": "clang", "version": "Debian clang version 14.0.6"}) == (
        "Debian clang version 14.0.6"
    )
    assert tc.toolchain_label({"name": STORE_GCC, "store_path": STORE_GCC}) == STORE_GCC
    assert tc.toolchain_label("gcc") == "gcc"


def test_a_hosts_compiler_is_judged_against_the_identity() -> None:
    identity = {"name": "clang", "version": "Debian clang version 14.0.6"}
    same = "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n"
    assert tc.host_problem(identity, host="farm1", exit_status=0, output=same) is None
    assert tc.host_problem(
        identity, host="farm1", exit_status=0, output="Debian clang version 16.0.6\n"
    ) == (
        "farm1's clang is 'Debian clang version 16.0.6', not 'Debian clang version 14.0.6' as"
        " the build identity says (resolved on the planning host)"
    )
    assert tc.host_problem(
        identity, host="farm1", exit_status=127, output="sh: 1: clang: not found\n"
    ) == ("farm1 has no clang (toolchain 'clang' is not installed there)")
    assert tc.host_problem(identity, host="farm1", exit_status=None, output="") == (
        "`clang --version` did not answer on farm1"
    )
    nix = {"name": STORE_GCC, "store_path": STORE_GCC}
    assert tc.host_problem(nix, host="farm1", exit_status=0, output="gcc (GCC) 13.2.0") is None
    assert tc.version_command(tc.parse_toolchain(STORE_GCC)) == f"{STORE_GCC}/bin/gcc --version"


# --- resolving on this machine with Debian's gcc and clang ---------------------------------


@pytest.mark.parametrize("name", ["gcc", "clang", "clang-14", "gcc-12"])
def test_installed_compilers_resolve_to_their_exact_version(name: str) -> None:
    assert probe_toolchain(name) == ResolvedToolchain(name, version=version_of(name))


def test_gcc_and_clang_resolve_to_different_compilers() -> None:
    resolved = resolve_toolchains(["clang", "gcc", "clang"])
    assert list(resolved) == ["clang", "gcc"]
    assert resolved["clang"].version != resolved["gcc"].version
    assert "clang version" in str(resolved["clang"].version)


def test_a_missing_compiler_is_a_problem_not_an_exception() -> None:
    assert probe_toolchain("gcc-99") == ResolvedToolchain(
        "gcc-99", problem="gcc-99 is not installed (not found on PATH)"
    )


def write_compiler(directory: Path, name: str, body: str) -> None:
    directory.mkdir(exist_ok=True)
    script = directory / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_a_compiler_that_fails_or_hangs_is_a_problem(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    write_compiler(bin_dir, "clang-77", "echo 'clang-77: licence expired' >&2; exit 3")
    write_compiler(bin_dir, "gcc-77", "exec sleep 30")
    write_compiler(bin_dir, "gcc-78", "exit 0")
    environ = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    assert probe_toolchain("clang-77", environ=environ).problem == (
        "`clang-77 --version` exited 3: clang-77: licence expired"
    )
    assert probe_toolchain("gcc-77", environ=environ, timeout=0.5).problem == (
        "`gcc-77 --version` did not answer in 0.5 s"
    )
    assert probe_toolchain("gcc-78", environ=environ).problem == (
        "`gcc-78 --version` printed no version"
    )


def test_the_probe_gets_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    write_compiler(bin_dir, "gcc-79", 'echo "gcc-79 ${GIT_TOKEN:-clean} $LC_ALL"')
    monkeypatch.setenv("GIT_TOKEN", "s3cret")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert probe_toolchain("gcc-79").version == "gcc-79 clean C"


def test_a_nix_store_path_is_concrete_without_running_anything() -> None:
    assert probe_toolchain(STORE_GCC) == ResolvedToolchain(STORE_GCC, store_path=STORE_GCC)
