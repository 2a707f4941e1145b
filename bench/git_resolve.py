"""Measure GitPython against plain `git` subprocesses for what the git adapter does.

Why: resolution runs on every reconcile pass for every branch, and a tree listing runs for every
harness revision, so the adapter's choice of GitPython or subprocess should rest on numbers taken
on this machine, not on folklore. The figures this prints are quoted at the top of
`reconciler/adapters/git.py`.

Run: `.venv/bin/python bench/git_resolve.py` (about half a minute). It builds a 5,000-commit
repository with ~1,000 files with `git fast-import` in a temporary directory, then times:

  (a) first-parent log of the newest 50 commits with tree, subject, committer time
  (b) the same for all 5,000 commits
  (c) a recursive listing (path -> blob) of a ~1,000-file tree
  (d) exporting that tree into an empty directory, three ways

each as the median of 5 runs, and prints the ratio against the subprocess way measured in the
same run. Finally it times the adapter itself on the same repository, as a sanity row.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import git as gitpython

from reconciler.adapters.git import GitResolver
from reconciler.model.specs import Repo

RUNS = 5
FILES = 1_000
COMMITS = 5_000
BRANCH = "refs/heads/main"
ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}


def git_fast_history(path: Path, n: int, *, files: int = FILES) -> None:
    """Create a git repo at `path` whose `main` has `n` linear commits over `files` files.

    The first commit adds every file; each later commit rewrites one of them, so every commit
    has its own tree, as on a busy kernel branch. One fast-import stream keeps this to a second.
    """
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=ENV)
    stream = io.BytesIO()

    def data(payload: bytes) -> None:
        stream.write(b"data %d\n" % len(payload))
        stream.write(payload)
        stream.write(b"\n")

    for number in range(1, n + 1):
        stream.write(f"commit {BRANCH}\nmark :{number}\n".encode())
        stream.write(b"committer Bench <bench@example.org> %d +0000\n" % (1_700_000_000 + number))
        data(f"bench: commit {number}\n\nBody of commit {number}.\n".encode())
        if number > 1:
            stream.write(f"from :{number - 1}\n".encode())
            touched = [number % files]
        else:
            touched = list(range(files))
        for index in touched:
            mode = "100755" if index % 10 == 0 else "100644"
            stream.write(f"M {mode} inline dir{index % 30}/file{index}.c\n".encode())
            data(f"/* file {index}, revision {number} */\n".encode() * 20)
    subprocess.run(
        ["git", "-C", str(path), "fast-import", "--quiet"],
        input=stream.getvalue(),
        check=True,
        env=ENV,
    )


def medians(actions: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median seconds of each action over RUNS rounds, interleaved so load affects all alike."""
    timings: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(RUNS):
        for name, action in actions.items():
            start = time.perf_counter()
            action()
            timings[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in timings.items()}


def subprocess_log(path: Path, count: int) -> list[tuple[str, str, int, str]]:
    out = subprocess.run(
        [
            "git",
            "-C",
            str(path),
            "log",
            "--first-parent",
            "-z",
            f"--max-count={count}",
            "--format=%H%x00%T%x00%ct%x00%s",
            "--end-of-options",
            BRANCH,
        ],
        capture_output=True,
        check=True,
        env=ENV,
    ).stdout
    fields = out.split(b"\0")
    return [
        (fields[i].decode(), fields[i + 1].decode(), int(fields[i + 2]), fields[i + 3].decode())
        for i in range(0, len(fields) - 3, 4)
    ]


def gitpython_log(repo: gitpython.Repo, count: int) -> list[tuple[str, str, int, str]]:
    return [
        (c.hexsha, c.tree.hexsha, c.committed_date, str(c.summary))
        for c in repo.iter_commits(BRANCH, first_parent=True, max_count=count)
    ]


def subprocess_ls_tree(path: Path, tree: str) -> dict[str, str]:
    out = subprocess.run(
        ["git", "-C", str(path), "ls-tree", "-r", "-z", "--full-tree", tree],
        capture_output=True,
        check=True,
        env=ENV,
    ).stdout
    files = {}
    for entry in out.split(b"\0"):
        if entry:
            meta, name = entry.split(b"\t", 1)
            files[name.decode()] = meta.split(b" ")[2].decode()
    return files


def gitpython_ls_tree(repo: gitpython.Repo, tree: str) -> dict[str, str]:
    return {
        str(item.path): item.hexsha
        for item in gitpython.Tree(repo, bytes.fromhex(tree), path="").traverse()
        if isinstance(item, gitpython.Blob)
    }


def export_archive(path: Path, tree: str, dest: Path) -> None:
    with subprocess.Popen(
        ["git", "-C", str(path), "archive", "--format=tar", tree], stdout=subprocess.PIPE, env=ENV
    ) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            archive.extractall(dest, filter="data")


def export_checkout_index(path: Path, tree: str, dest: Path) -> None:
    index = dest.parent / (dest.name + ".index")
    env = {**ENV, "GIT_INDEX_FILE": str(index)}
    git_dir = str(path / ".git")
    subprocess.run(["git", f"--git-dir={git_dir}", "read-tree", tree], check=True, env=env)
    subprocess.run(
        ["git", f"--git-dir={git_dir}", f"--work-tree={dest}", "checkout-index", "-a", "-f"],
        check=True,
        env=env,
    )
    index.unlink()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="git-resolve-bench-") as scratch:
        root = Path(scratch)
        path = root / "linux"
        start = time.perf_counter()
        git_fast_history(path, COMMITS)
        print(f"built {COMMITS} commits x {FILES} files in {time.perf_counter() - start:.2f} s")
        tree = subprocess_log(path, 1)[0][1]

        warm = gitpython.Repo(path)
        assert gitpython_log(warm, 50) == subprocess_log(path, 50)
        assert gitpython_ls_tree(warm, tree) == subprocess_ls_tree(path, tree)
        assert len(subprocess_log(path, COMMITS)) == COMMITS

        export_numbers = iter(range(10_000))

        def fresh_dir() -> Path:
            dest = root / f"export{next(export_numbers)}"
            dest.mkdir()
            return dest

        resolver = GitResolver(root / "cache")
        repo = Repo(kind="Repo", name="linux", url=str(path))
        rows = {
            "(a) log newest 50": (
                lambda: gitpython_log(warm, 50),
                lambda: subprocess_log(path, 50),
            ),
            f"(b) log all {COMMITS}": (
                lambda: gitpython_log(warm, COMMITS),
                lambda: subprocess_log(path, COMMITS),
            ),
            f"(c) ls-tree -r {FILES} files": (
                lambda: gitpython_ls_tree(warm, tree),
                lambda: subprocess_ls_tree(path, tree),
            ),
        }
        print(f"\nmedian of {RUNS} runs; GitPython Repo reused (warm cat-file process)")
        print(f"{'operation':<26} {'GitPython':>11} {'subprocess':>11} {'ratio':>7}")
        for name, (with_gitpython, with_subprocess) in rows.items():
            timed = medians({"gitpython": with_gitpython, "subprocess": with_subprocess})
            print(
                f"{name:<26} {timed['gitpython'] * 1000:>8.1f} ms"
                f" {timed['subprocess'] * 1000:>8.1f} ms"
                f" {timed['gitpython'] / timed['subprocess']:>6.1f}x"
            )
        cold = medians({"cold": lambda: gitpython_log(gitpython.Repo(path), 50)})["cold"]
        print(f"(a) with a fresh GitPython Repo each run: {cold * 1000:.1f} ms")
        warm.close()

        exports = medians(
            {
                "git archive | tarfile": lambda: export_archive(path, tree, fresh_dir()),
                "read-tree + checkout-index": lambda: export_checkout_index(
                    path, tree, fresh_dir()
                ),
                "adapter (cat-file --batch)": lambda: resolver.tree_view(
                    repo=repo, tree=tree
                ).export(fresh_dir()),
            }
        )
        baseline = exports["git archive | tarfile"]
        print(f"\n(d) export {FILES} files, ratio against git archive | tarfile(filter='data')")
        for name, seconds in exports.items():
            print(f"{name:<34} {seconds * 1000:>8.1f} ms {seconds / baseline:>6.2f}x")

        adapter = medians(
            {
                "branch_commits(50)": lambda: resolver.branch_commits(
                    repo=repo, ref="main", max_commits=50, asked_by="bench"
                ),
                "tree_view().files()": lambda: resolver.tree_view(repo=repo, tree=tree).files(),
            }
        )
        for name, seconds in adapter.items():
            print(f"adapter {name}: {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
