"""Where the git adapter reads a repository from, and how it runs git safely.

A Repo spec names either a local directory (read in place: a developer's checkout, or the farm's
own mirror) or a remote URL. Remote repositories are kept as bare mirrors in a cache directory so
a reconcile pass costs one fetch, not one clone. Mirrors are created in a temporary directory and
renamed into place, so a clone killed half-way never leaves a directory that later passes would
mistake for a mirror.

Every git process runs with an argument list (never a shell), a timeout, no terminal (its own
session, stdin closed, prompts disabled), and an environment stripped of variables that would
point it at another repository. Refs and URLs from specs are user input: callers refuse a
leading '-' and pass refs after `--end-of-options`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.model.errors import GitError, GitUnreachableError
from reconciler.model.specs import ALLOWED_URL_SCHEMES, Repo

# Inherited variables that would make git read another repository or index than the one we name
# (we may run inside a git hook, where GIT_DIR is set), or ask someone for a password.
_DROPPED_ENV = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_CEILING_DIRECTORIES",
        "GIT_DISCOVERY_ACROSS_FILESYSTEM",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
    }
)
_FORCED_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "SSH_ASKPASS_REQUIRE": "never",
    "GCM_INTERACTIVE": "never",
    # Transports a spec may name; `ext::` (runs a command) and friends stay refused.
    "GIT_ALLOW_PROTOCOL": ":".join(ALLOWED_URL_SCHEMES),
    # Identity is the real objects: replace refs must not change what a commit's tree is.
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_OPTIONAL_LOCKS": "0",
    "LC_ALL": "C",
}

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_SCP_LIKE = re.compile(r"^[^/]+:")


class GitProcessError(Exception):
    """git could not be run to completion (missing binary, timeout); callers wrap it."""


@dataclass(frozen=True)
class GitOutput:
    returncode: int
    stdout: bytes
    stderr: str

    def error_text(self) -> str:
        """The last lines git wrote to stderr, credentials removed: enough to act on."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return redact(" / ".join(lines[-3:])) or f"git exited with status {self.returncode}"


def git_environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _DROPPED_ENV and not key.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(_FORCED_ENV)
    return env


def run_git(
    args: Sequence[str],
    *,
    timeout: float,
    extra_env: dict[str, str] | None = None,
) -> GitOutput:
    """Run `git ARGS` and return what it printed; a non-zero status is the caller's to judge.

    The process gets its own session so that, on timeout, its children (ssh, git-remote-https)
    are killed with it, and so that none of them can open the terminal to prompt.
    """
    env = git_environment()
    if extra_env:
        env.update(extra_env)
    try:
        proc = subprocess.Popen(
            ["git", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise GitProcessError(f"cannot run git: {exc}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_process_group(proc)
        proc.communicate()
        raise GitProcessError(f"git {_subcommand(args)} timed out after {timeout:g} s") from exc
    return GitOutput(proc.returncode, stdout, stderr.decode("utf-8", "replace"))


def _subcommand(args: Sequence[str]) -> str:
    """`fetch` of `-c k=v --git-dir=X fetch ...`: what a timeout message should name."""
    words = iter(args)
    for word in words:
        if word in ("-c", "-C"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return "command"


def kill_process_group(proc: subprocess.Popen[bytes]) -> None:
    # ProcessLookupError: the whole group finished between the timeout and the kill.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def redact(text: str) -> str:
    """Hide `user:password@` in URLs: a token in a spec URL must never reach a log."""
    return _USERINFO.sub("***@", text)


def is_remote_url(url: str) -> bool:
    """`scheme://...` or scp-like `host:path` (a colon before any slash), as git decides."""
    return "://" in url or (not url.startswith("/") and bool(_SCP_LIKE.match(url)))


def refuse_option_like(value: str, *, what: str, where: str) -> None:
    """A value starting with '-' would be read by git as an option: never pass it on."""
    if value.startswith("-"):
        raise GitError(
            f"{what} {value!r} starts with '-', which git would read as an option",
            where=where,
            hint=f"write the {what} as git names it, without a leading '-'",
        )


class RepositoryLocator:
    """Maps a Repo spec to a git directory to read: in place, or a fetched bare mirror."""

    def __init__(self, *, cache_dir: Path, fetch: bool, timeout: float) -> None:
        self._cache_dir = cache_dir
        self._fetch = fetch
        self._timeout = timeout
        self._lock = threading.Lock()
        self._git_dirs: dict[tuple[str, str], Path] = {}
        """(url, repo name) -> git dir, once located (and, for a mirror, fetched) by us."""
        self._failures: dict[tuple[str, str], GitUnreachableError] = {}
        """(url, repo name) -> why it could not be reached. Several specs (a branch, its
        baseline) ask for the same repo in one pass; each gets the error at its own location,
        and only the first pays for the attempt (a network timeout can take minutes)."""

    def git_dir(self, *, repo: Repo, asked_by: str) -> Path:
        key = (repo.url, repo.name)
        with self._lock:
            failure = self._failures.get(key)
            if failure is not None:
                raise GitUnreachableError(failure.message, where=asked_by, hint=failure.hint)
            if key not in self._git_dirs:
                refuse_option_like(repo.url, what="repository URL", where=asked_by)
                try:
                    if is_remote_url(repo.url):
                        self._git_dirs[key] = self._mirror(repo=repo, asked_by=asked_by)
                    else:
                        self._git_dirs[key] = self._local(url=repo.url, asked_by=asked_by)
                except GitUnreachableError as error:
                    self._failures[key] = error
                    raise
            return self._git_dirs[key]

    def mirror_path(self, *, repo: Repo) -> Path:
        digest = hashlib.sha256(f"{repo.url}\0{repo.name}".encode()).hexdigest()[:16]
        return self._cache_dir / f"{repo.name}-{digest}.git"

    def _local(self, *, url: str, asked_by: str) -> Path:
        path = Path(url)
        hint = (
            f"check that {url} is a git checkout or bare repository:"
            f" git -C {shlex.quote(url)} rev-parse"
        )
        if not path.is_dir():
            raise GitUnreachableError(
                f"repository {url} is not a directory", where=asked_by, hint=hint
            )
        # The ceiling keeps git from walking up into an enclosing repository: a plain directory
        # inside someone's checkout must be refused, not silently read as that checkout.
        output = self._run(
            ["-C", str(path), "rev-parse", "--absolute-git-dir"],
            url=url,
            asked_by=asked_by,
            extra_env={"GIT_CEILING_DIRECTORIES": str(path.resolve().parent)},
        )
        if output.returncode != 0:
            raise GitUnreachableError(
                f"repository {url} is not a git repository: {output.error_text()}",
                where=asked_by,
                hint=hint,
            )
        return Path(output.stdout.decode().strip())

    def _mirror(self, *, repo: Repo, asked_by: str) -> Path:
        mirror = self.mirror_path(repo=repo)
        shown = redact(repo.url)
        if mirror.is_dir():
            if self._fetch:
                self._fetch_into(mirror, url=repo.url, asked_by=asked_by)
            return mirror
        if not self._fetch:
            raise GitUnreachableError(
                f"no local mirror of {shown} and fetching is disabled",
                where=asked_by,
                hint="run once with fetching enabled, or create it: git clone --mirror -- "
                f"{shlex.quote(shown)} {shlex.quote(str(mirror))}",
            )
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=self._cache_dir))
        try:
            self._create_mirror(staging, url=repo.url, asked_by=asked_by)
            try:
                staging.rename(mirror)
            except OSError:
                # Another reconciler created it meanwhile; theirs is as good as ours.
                if not mirror.is_dir():
                    raise
                shutil.rmtree(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return mirror

    def _create_mirror(self, staging: Path, *, url: str, asked_by: str) -> None:
        git_dir = f"--git-dir={staging}"
        for args in (
            ["init", "--bare", "--quiet", str(staging)],
            [git_dir, "config", "remote.origin.url", url],
            # Branches and tags only: pull-request refs of a forge would multiply the mirror.
            [git_dir, "config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"],
            [git_dir, "config", "--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*"],
        ):
            output = self._run(args, url=url, asked_by=asked_by)
            if output.returncode != 0:
                raise GitUnreachableError(
                    f"cannot create a mirror of {redact(url)} in {self._cache_dir}: "
                    f"{output.error_text()}",
                    where=asked_by,
                    hint=f"check that {self._cache_dir} is writable",
                )
        self._fetch_into(staging, url=url, asked_by=asked_by)

    def _fetch_into(self, mirror: Path, *, url: str, asked_by: str) -> None:
        output = self._run(
            [f"--git-dir={mirror}", "fetch", "--quiet", "--prune", "--no-tags", "origin"],
            url=url,
            asked_by=asked_by,
        )
        if output.returncode != 0:
            raise GitUnreachableError(
                f"cannot fetch {redact(url)}: {output.error_text()}",
                where=asked_by,
                hint=f"check the URL and the network: git ls-remote -- {shlex.quote(redact(url))}",
            )

    def _run(
        self,
        args: list[str],
        *,
        url: str,
        asked_by: str,
        extra_env: dict[str, str] | None = None,
    ) -> GitOutput:
        try:
            return run_git(args, timeout=self._timeout, extra_env=extra_env)
        except GitProcessError as exc:
            raise GitUnreachableError(
                f"cannot read {redact(url)}: {exc}",
                where=asked_by,
                hint=f"check the URL and the network: git ls-remote -- {shlex.quote(redact(url))}",
            ) from exc
