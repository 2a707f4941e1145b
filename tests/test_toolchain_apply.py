"""A toolchain is what the identity says: the quickstart built under `toolchain: clang` and gcc
through the real apply path with Debian's compilers, a toolchain the planning host lacks
blocking only its own work, and a host whose compiler differs refusing it.

The one seam: a "different host" is the local machine with a PATH directory in front holding a
`clang` script that reports another version (LocalHost with a PATH of its own).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.executors.base import LineCallback
from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.harness.registry import adapter_for
from reconciler.adapters.journal import Journal
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.apply import Applier, ApplySummary
from reconciler.app.applying import HostOptions
from reconciler.app.host_toolchain import ToolchainRefused, run_environment
from reconciler.app.planning import Planner, Workspace
from reconciler.app.progress import render_summary
from reconciler.app.worker_setup import HostWorkspace
from reconciler.app.workers import ToolchainRow, list_workers, render_workers
from reconciler.cli.main import main
from reconciler.core.identity import identity_of
from reconciler.model.desired import BlockReason, Origin, OriginKind
from reconciler.model.execution import BuildJob, CommandResult, SourceCheckout

FAKE_CLANG = "Debian clang version 99.0.0"


def version_of(binary: str) -> str:
    return subprocess.run(
        [binary, "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={"LC_ALL": "C", "PATH": os.environ["PATH"]},
    ).stdout.splitlines()[0]


def add_profile(farm: Path, name: str, toolchain: str) -> None:
    """A profile differing from `default` in its toolchain only, on main's newest commit."""
    with (farm / "specs/quickstart.yaml").open("a") as specs:
        specs.write(
            f'---\nkind: Profile\nname: {name}\nbuild_env: {{CFLAGS: "-O2"}}\n'
            f"toolchain: {toolchain}\n"
        )
    branches = farm / "specs/branches.yaml"
    text = branches.read_text().replace(
        "profiles: [default, debug]", f"profiles: [default, {name}]"
    )
    branches.write_text(text.replace("max_commits: 10", "max_commits: 1"))


def builds(farm: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(farm.glob(".reconciler/store/builds/*.json"))]


def build_log(farm: Path, record: dict[str, Any]) -> str:
    with ResultStore(farm / ".reconciler/store") as store:
        data = store.read_log(record["log"])
    assert data is not None
    return data.decode()


def test_a_clang_profile_builds_with_clang_and_its_identity_holds_the_version(
    quickstart: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_profile(quickstart, "clang", "clang")
    assert main(["apply", "--specs", str(quickstart / "specs")]) == 0
    capsys.readouterr()
    newest = [b for b in builds(quickstart) if b["preimage"].get("env") == {"CFLAGS": "-O2"}]
    by_compiler = {b["preimage"]["toolchain"]["name"]: b for b in newest}
    clang, gcc = by_compiler["clang"], by_compiler["gcc"]
    assert clang["preimage"]["source_tree"] == gcc["preimage"]["source_tree"]
    # The concrete compiler, as `clang --version` says here, not the name alone.
    assert clang["preimage"]["toolchain"] == {"name": "clang", "version": version_of("clang")}
    assert gcc["preimage"]["toolchain"] == {"name": "gcc", "version": version_of("gcc")}
    clang_log, gcc_log = build_log(quickstart, clang), build_log(quickstart, gcc)
    assert "clang -O2 -Wall -Wextra -o calc calc.c" in clang_log.splitlines()
    assert "gcc -O2 -Wall -Wextra -o calc calc.c" in gcc_log.splitlines()
    assert clang_log.splitlines()[0] == (
        f"reconciler: toolchain clang ({version_of('clang')}), applied by the command recipe:"
        " CC=clang CXX=clang++"
    )
    assert clang["image_hash"] != gcc["image_hash"]
    assert {clang["status"], gcc["status"]} == {"pass"}


def test_a_toolchain_the_planning_host_lacks_blocks_only_its_own_work(quickstart: Path) -> None:
    planner = Planner(
        git=GitResolver(quickstart / ".reconciler/git"), cache=MemoryEnumerationCache()
    )
    before = planner.desired(load_specs(quickstart / "specs"))
    with (quickstart / "specs/quickstart.yaml").open("a") as specs:
        specs.write("---\nkind: Profile\nname: future\ntoolchain: gcc-99\n")
    branches = quickstart / "specs/branches.yaml"
    branches.write_text(
        branches.read_text().replace(
            "profiles: [default, debug]", "profiles: [default, debug, future]"
        )
    )
    after = planner.desired(load_specs(quickstart / "specs"))

    assert [s.build.id for s in after.slots] == [s.build.id for s in before.slots]
    (blocked,) = after.blocked
    main_commits = tuple(
        s.commit.commit for s in before.slots if s.origin.name == "main" and s.profile == "default"
    )
    assert (blocked.reason, blocked.profile, blocked.harness, blocked.origins, blocked.commits) == (
        BlockReason.TOOLCHAIN_UNAVAILABLE,
        "future",
        "tap-scripts",
        (Origin(OriginKind.BRANCH, "main"),),
        main_commits,
    )
    assert blocked.message.startswith(
        "toolchain 'gcc-99' of profile 'future' could not be resolved on the planning host:"
        " gcc-99 is not installed (not found on PATH). Install it there"
    )


class HostWithItsOwnPath(LocalHost):
    """The local machine as another host would be: its own name and compilers in front."""

    def __init__(self, *, name: str, path_prefix: Path | None, workdir: Path) -> None:
        super().__init__(workdir=workdir, slots=2)
        self._name = name
        self._prefix = path_prefix

    @property
    def name(self) -> str:
        return self._name

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> CommandResult:
        extra = dict(env or {})
        if self._prefix is not None:
            extra["PATH"] = f"{self._prefix}:{os.environ['PATH']}"
        return await super().run(command, cwd=cwd, env=extra, timeout=timeout, on_line=on_line)


def fake_clang(directory: Path) -> Path:
    directory.mkdir()
    script = directory / "clang"
    script.write_text(f"#!/bin/sh\necho '{FAKE_CLANG}'\necho 'Target: x86_64-pc-linux-gnu'\n")
    script.chmod(0o755)
    return directory


def apply_on(farm: Path, hosts: list[LocalHost]) -> ApplySummary:
    specs = load_specs(farm / "specs")
    cache = MemoryEnumerationCache()
    with (
        ResultStore(farm / ".reconciler/store") as store,
        Journal.open(farm / "journal.sqlite", now=time.time()) as journal,
    ):
        applier = Applier(
            specs=specs,
            planner=Planner(git=GitResolver(farm / ".reconciler/git"), cache=cache),
            store=store,
            journal=journal,
            hosts=hosts,
            adapters={n: adapter_for(h, cache=cache) for n, h in specs.harnesses.items()},
        )
        return asyncio.run(applier.run())


def results(farm: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in farm.glob(".reconciler/store/results/*/*.json")]


def test_a_host_whose_clang_differs_is_refused_and_nothing_falls_back(quickstart: Path) -> None:
    add_profile(quickstart, "clang", "clang")
    odd = HostWithItsOwnPath(
        name="odd", path_prefix=fake_clang(quickstart / "odd-bin"), workdir=quickstart / "odd"
    )
    summary = apply_on(quickstart, [odd])

    (held,) = summary.held_by_toolchain.values()
    expected = version_of("clang")
    assert held.message == (
        f"no host can build toolchain 'clang' ({expected}): odd's clang is '{FAKE_CLANG}', not"
        f" '{expected}' as the build identity says (resolved on the planning host); 2 batches"
        " held back"
    )
    assert render_summary(summary).splitlines()[-1] == f"Held back: {held.message}."
    toolchains = {b["preimage"]["toolchain"]["name"] for b in builds(quickstart)}
    assert toolchains == {"gcc"}, "no clang build was made with another compiler"
    stored = results(quickstart)
    assert stored and {r["attempts"][0]["worker"] for r in stored} == {"odd"}
    assert summary.infra_failures == 0, "a refusal is not retried as if it were transient"


def test_batches_go_only_to_the_host_that_has_the_identitys_compiler(quickstart: Path) -> None:
    add_profile(quickstart, "clang", "clang")
    odd = HostWithItsOwnPath(
        name="odd", path_prefix=fake_clang(quickstart / "odd-bin"), workdir=quickstart / "odd"
    )
    good = HostWithItsOwnPath(name="good", path_prefix=None, workdir=quickstart / "good")
    summary = apply_on(quickstart, [odd, good])

    assert (summary.held_by_toolchain, summary.infra_failures) == ({}, 0)
    clang_builds = [b for b in builds(quickstart) if b["preimage"]["toolchain"]["name"] == "clang"]
    assert [b["worker"] for b in clang_builds] == ["good"]
    clang_build_ids = {b["id"] for b in clang_builds}
    workers = {
        r["attempts"][0]["worker"] for r in results(quickstart) if r["build"] in clang_build_ids
    }
    assert workers == {"good"}


def test_a_host_refuses_a_build_whose_compiler_it_lacks(quickstart: Path, tmp_path: Path) -> None:
    """The check inside the build itself: a host asked directly, past placement."""
    odd = HostWithItsOwnPath(
        name="odd", path_prefix=fake_clang(tmp_path / "odd-bin"), workdir=tmp_path / "odd"
    )
    expected = version_of("clang")
    job = BuildJob(
        build="b" * 64,
        preimage={
            "recipe": {"recipe": "command", "version": 2},
            "toolchain": {"name": "clang", "version": expected},
        },
        source=SourceCheckout(url="/nonexistent", commit="c" * 40, tree="t" * 40),
        harness="tap-scripts",
        profile="clang",
        arch="x86_64",
    )
    with ResultStore(tmp_path / "store") as store:
        workspace = HostWorkspace(host=odd, store=store, clock=time.time)
        with pytest.raises(ToolchainRefused) as refused:
            asyncio.run(workspace.check_toolchain(job))
    assert str(refused.value) == (
        f"odd: build bbbbbbbbbbbb of profile clang: odd's clang is '{FAKE_CLANG}', not"
        f" '{expected}' as the build identity says (resolved on the planning host) (hint: install"
        " the compiler the identity names on odd, or build on hosts that have it; a build never"
        " falls back to another compiler than toolchain 'clang' resolved to)"
    )
    assert refused.value.retryable is False


def test_workers_lists_the_toolchains_each_host_can_build(quickstart: Path) -> None:
    add_profile(quickstart, "clang", "clang")
    with (quickstart / "specs/quickstart.yaml").open("a") as specs:
        specs.write(
            "---\nkind: Baseline\nname: future\nrepo: quickstart\nref: v1.0\n"
            "test_groups: [calc]\nprofiles: [later]\n"
            "---\nkind: Profile\nname: later\ntoolchain: gcc-99\n"
        )
    workspace = Workspace.for_specs(quickstart / "specs")
    (row,) = list_workers(workspace, specs=load_specs(quickstart / "specs"), options=HostOptions())
    assert row.toolchains == (
        ToolchainRow("clang", version_of("clang"), True, "ok"),
        ToolchainRow("gcc", version_of("gcc"), True, "ok"),
        ToolchainRow(
            "gcc-99",
            "",
            False,
            "not resolved on the planning host: gcc-99 is not installed (not found on PATH)",
        ),
    )
    assert render_workers([row]).splitlines()[1:] == [
        f"{'local':<28} {row.slots:>5} {row.arch:<8} {0:>7}  {'ok':<9} -",
        f"    builds clang ({version_of('clang')})",
        f"    builds gcc ({version_of('gcc')})",
        "    cannot build gcc-99: not resolved on the planning host: gcc-99 is not installed"
        " (not found on PATH)",
    ]


KERNEL_STYLE_MAKEFILE = """\
# Like a kernel tree: CC is assigned, so CC in the environment does not reach the compile.
CC = gcc
hello: hello.c
\t$(CC) -o $@ hello.c
"""


def test_a_kernel_tree_build_command_gets_the_toolchain_through_makeflags(tmp_path: Path) -> None:
    repo = tmp_path / "tree"
    repo.mkdir()
    (repo / "Makefile").write_text(KERNEL_STYLE_MAKEFILE)
    (repo / "hello.c").write_text("int main(void) { return 0; }\n")
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "tree"],
    ):
        subprocess.run(["git", "-C", str(repo), *command], check=True)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    toolchain = {"name": "clang", "version": version_of("clang")}
    identity = identity_of(
        {"kind": "build", "recipe": {"recipe": "kernel", "version": 2}, "toolchain": toolchain}
    )
    job = BuildJob(
        build=identity.hex,
        preimage=identity.preimage,
        source=SourceCheckout(url=str(repo), commit=commit, tree="t" * 40),
        harness="selftests",
        profile="clang",
        arch="x86_64",
    )
    with ResultStore(tmp_path / "store") as store:
        workspace = HostWorkspace(
            host=LocalHost(workdir=tmp_path / "work", slots=1), store=store, clock=time.time
        )
        _, outcome = asyncio.run(workspace.ensure_build(job, build_command="make"))
        record = store.get_build(job.build)
        assert record is not None
        log = store.read_log(record.log).decode().splitlines()
    assert outcome.status.value == "pass"
    assert log[0] == (
        f"reconciler: toolchain clang ({version_of('clang')}), applied by the kernel recipe:"
        " CC=clang CXX=clang++ MAKEFLAGS+=LLVM=1 MAKEFLAGS+=CC=clang MAKEFLAGS+=HOSTCC=clang"
    )
    assert "clang -o hello hello.c" in log


def test_a_kernel_built_inside_the_run_gets_cc_in_the_run_environment() -> None:
    def job(recipe: str) -> BuildJob:
        return BuildJob(
            build="e" * 64,
            preimage={
                "recipe": {"recipe": recipe, "version": 2},
                "toolchain": {"name": "clang-14", "version": "Debian clang version 14.0.6"},
            },
            source=SourceCheckout(url="/nonexistent", commit="c" * 40, tree="t" * 40),
            harness="h",
            profile="p",
            arch="x86_64",
        )

    assert run_environment(job("ktest-kernel")) == {"CC": "clang-14", "CXX": "clang++-14"}
    assert run_environment(job("command")) == {}
    assert run_environment(job("kbuild")) == {}
