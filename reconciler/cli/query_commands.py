"""`branches`, `log`, `show`, `logs`: ci-status-style queries, over the local store or a
dashboard (`--remote URL`). Each command parses, calls one query, prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from reconciler.app.planning import Workspace
from reconciler.app.queries import StoreQueries, local_queries
from reconciler.app.query_model import CommitLogs, Json
from reconciler.app.query_remote import RemoteQueries
from reconciler.app.query_render import (
    render_branches,
    render_commit,
    render_failures,
    render_log,
    render_logs,
)
from reconciler.app.text_safety import terminal_safe
from reconciler.model.errors import ExitCode

AddOptions = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, *, add_specs: AddOptions, add_store: AddOptions) -> None:
    """Add the query subcommands to `sub` (argparse subparsers of `reconciler`)."""

    def command(name: str, help_text: str, run: Callable[[argparse.Namespace], int]) -> Any:
        parser = sub.add_parser(name, help=help_text)
        add_specs(parser)
        add_store(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument(
            "--remote",
            metavar="URL",
            help="read a dashboard's published results (http or https) instead of the store",
        )
        parser.add_argument(
            "--fetch",
            action="store_true",
            help="fetch tracked branches' remotes first (default: the cached mirrors)",
        )
        parser.set_defaults(run=run)
        return parser

    command(
        "branches", "tracked branches and baselines with their newest commit's counts", branches
    )
    log = command("log", "a branch's commits, newest first, with pass/fail counts", branch_log)
    log.add_argument("branch", metavar="BRANCH", help="a Branch (or Baseline) spec name")
    log.add_argument("--profile", metavar="NAME", help="only this profile's counts")
    show = command("show", "every test of a commit, failures first", show_commit)
    show.add_argument("commit", metavar="COMMIT", help="a commit or a unique prefix (>= 4 hex)")
    show.add_argument("--profile", metavar="NAME", help="only this profile's tests")
    logs = command("logs", "a commit's failed tests, or one test's log", commit_logs)
    logs.add_argument("commit", metavar="COMMIT", help="a commit or a unique prefix (>= 4 hex)")
    logs.add_argument("test", metavar="TEST", nargs="?", help="FILE:SUBTEST, or FILE for all")
    logs.add_argument("--profile", metavar="NAME", help="only this profile's result")
    logs.add_argument("--full", action="store_true", help="the whole batch log")
    logs.add_argument("--attempt", type=int, default=1, metavar="N", help="attempt N (from 1)")


@contextmanager
def _queries(args: argparse.Namespace) -> Iterator[StoreQueries | RemoteQueries]:
    if args.remote:
        yield RemoteQueries(args.remote)
        return
    workspace = Workspace.for_specs(args.specs, store=args.store)
    with local_queries(workspace, fetch=args.fetch) as queries:
        yield queries


def _emit(text: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(terminal_safe(text) if stream.isatty() else text)


def _emit_json(document: Json) -> None:
    # json.dumps escapes control characters itself: safe on any terminal.
    print(json.dumps(document, indent=2, ensure_ascii=False))


def branches(args: argparse.Namespace) -> int:
    with _queries(args) as queries:
        result = queries.branches()
    if args.json:
        _emit_json(result.as_json())
    else:
        _emit(render_branches(result))
    return ExitCode.OK


def branch_log(args: argparse.Namespace) -> int:
    with _queries(args) as queries:
        result = queries.branch_log(args.branch).with_profile(args.profile)
    if args.json:
        _emit_json(result.as_json())
    else:
        _emit(render_log(result))
    return ExitCode.OK


def show_commit(args: argparse.Namespace) -> int:
    with _queries(args) as queries:
        result = queries.commit_results(args.commit).with_profile(args.profile)
    if args.json:
        _emit_json(result.as_json())
    else:
        _emit(render_commit(result))
    return ExitCode.OK


def commit_logs(args: argparse.Namespace) -> int:
    with _queries(args) as queries:
        result = queries.commit_logs(
            args.commit, args.test, full=args.full, attempt=args.attempt, profile=args.profile
        )
    if args.json:
        _emit_json(result.as_json())
    elif isinstance(result, CommitLogs):
        out, notes = render_logs(result)
        _emit(notes, sys.stderr)
        _emit(out)
    else:
        _emit(render_failures(result))
    return ExitCode.OK
