"""A worker's copy of a harness checkout with the dependencies a batch's test file uses.

ktest reads its `require-git` dependencies from `$ktest_deps_dir/<name>` and, in older code,
from paths beside the declaring file (`tests/fs/xfstests`); inside its VM it reaches the host's
files under `/host`. So the dependencies are checked out *inside* the harness checkout
(`.reconciler-deps/<name>`), the older paths are relative links to them, and one directory tree
works on the host and in the VM alike. The checkout is named by the harness tree and the
dependency trees together: a batch never sees another dependency revision than its identity
names. Every path reaches the shell through `shlex.quote`.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Sequence

from reconciler.app.worker_setup import HostWorkspace
from reconciler.model.execution import BatchDependency, SourceCheckout

DEPS_DIR = ".reconciler-deps"


def checkout_name(tests: SourceCheckout, dependencies: Sequence[BatchDependency]) -> str:
    key = "\n".join(f"{d.name}={d.source.tree}" for d in sorted(dependencies, key=lambda d: d.name))
    return f"{tests.tree}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def link_commands(dependencies: Sequence[BatchDependency]) -> list[str]:
    """Shell commands (run in the harness checkout) linking each older path to its dependency,
    where the tree has nothing there and the parent directory exists."""
    commands = []
    for dependency in dependencies:
        for link in dependency.links:
            parent = posixpath.dirname(link) or "."
            target = posixpath.relpath(f"{DEPS_DIR}/{dependency.name}", parent)
            quoted = shlex.quote(link)
            commands.append(
                f"{{ [ -e {quoted} ] || [ -L {quoted} ] || [ ! -d {shlex.quote(parent)} ] ||"
                f" ln -s {shlex.quote(target)} {quoted}; }}"
            )
    return commands


async def provision_dependencies(
    workspace: HostWorkspace,
    *,
    tests: SourceCheckout,
    dependencies: Sequence[BatchDependency],
) -> tuple[str, str]:
    """(harness checkout, its ktest_deps_dir) on the host, made once per name."""
    into = f"harness/{checkout_name(tests, dependencies)}"
    tests_dir = await workspace.checkout(tests, into=into)
    for dependency in dependencies:
        await workspace.checkout(dependency.source, into=f"{into}/{DEPS_DIR}/{dependency.name}")
    commands = link_commands(dependencies)
    if commands:
        await workspace.must(
            f"cd {shlex.quote(tests_dir)} && " + " && ".join(commands),
            what="linking ktest dependencies into the harness checkout",
        )
    return tests_dir, f"{tests_dir}/{DEPS_DIR}"
