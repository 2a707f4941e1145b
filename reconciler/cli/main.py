"""The `reconciler` command: thin subcommands that parse arguments and call one app function.

Exit codes (also in README): 0 ok; 1 user or spec error; 2 per command (work pending for
`plan --detailed-exitcode`, under which every error is 1); 3 infrastructure error (git remote,
store, disk); 70 internal error
(a bug: please report it with the output of RECONCILER_DEBUG=1).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from reconciler import __version__
from reconciler.cli import (
    compare_commands,
    dashboard_commands,
    export_commands,
    import_commands,
    query_commands,
)
from reconciler.model.errors import ExitCode, ReconcilerError

INTERNAL_ERROR = 70

# Modules with `register(subparsers, *, add_specs, add_store)`; each adds its subcommands.
COMMAND_FAMILIES: list[Any] = [
    compare_commands,
    import_commands,
    export_commands,
    dashboard_commands,
    query_commands,
]

Command = Callable[[argparse.Namespace], int]


def _add_specs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--specs",
        type=Path,
        default=Path("specs"),
        metavar="DIR",
        help="spec directory (default: ./specs)",
    )


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        metavar="DIR",
        help="result store (default: $RECONCILER_STORE, else .reconciler/store beside the specs)",
    )


def _add_hosts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--known-hosts",
        type=Path,
        default=None,
        metavar="FILE",
        help="SSH known_hosts used to verify workers (default: ~/.ssh/known_hosts)",
    )
    parser.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="on first contact, record a worker's unknown host key (a changed key is refused)",
    )
    parser.add_argument(
        "--local-slots",
        type=int,
        default=None,
        metavar="N",
        help="parallel batches on the local machine when no WorkerPool is defined "
        "(default: number of CPUs)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a user error (exit 1), as every other mistake is.

    argparse's own exit 2 is this CLI's "work pending / results incomplete": a typo in a CI
    gate (`reconciler compare --profle x`) would read as "incomplete" rather than "wrong".
    Subcommand parsers are made from this class too (argparse uses the parent's class).
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USER_ERROR), f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from reconciler.cli import commands

    parser = _Parser(
        prog="reconciler",
        description="Keep kernel branches tested: diff the specs' desired state against "
        "the result store and run only what is missing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check a spec directory; list every error")
    _add_specs(validate)
    validate.set_defaults(run=commands.validate)

    plan = sub.add_parser("plan", help="show what the store lacks and what it would cost")
    _add_specs(plan)
    _add_store(plan)
    plan.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there is nothing to do, 2 when work is pending, 1 on error",
    )
    plan.add_argument(
        "--no-fetch", action="store_true", help="use cached mirrors of remote repos as they are"
    )
    plan.add_argument(
        "--base",
        metavar="REV",
        help="with --head: plan what changing the specs from REV to --head adds, removes, reuses",
    )
    plan.add_argument("--head", metavar="REV", help="the spec repo revision under review")
    plan.set_defaults(run=commands.plan)

    for name, help_text, run in (
        ("apply", "run the plan until the store holds what the specs ask for", commands.apply),
        ("reconcile", "plan, show the plan, then apply it once", commands.reconcile),
    ):
        runner = sub.add_parser(name, help=help_text)
        _add_specs(runner)
        _add_store(runner)
        _add_hosts(runner)
        runner.add_argument(
            "--no-fetch", action="store_true", help="use cached mirrors of remote repos as they are"
        )
        runner.set_defaults(run=run)

    watch = sub.add_parser(
        "watch", help="reconcile on spec changes, new commits and an interval (a service)"
    )
    _add_specs(watch)
    _add_store(watch)
    _add_hosts(watch)
    watch.add_argument(
        "--interval",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="reconcile at least this often (default 300)",
    )
    watch.add_argument(
        "--fetch-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="poll tracked branches' remotes this often (default 60)",
    )
    watch.add_argument(
        "--debounce",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="gather a burst of spec edits into one pass (default 2)",
    )
    watch.add_argument("--once", action="store_true", help="run one pass and exit")
    watch.add_argument(
        "--host-id",
        default=None,
        metavar="ID",
        help="this reconciler's directory on the status branch (default: hostname)",
    )
    watch.add_argument(
        "--status-branch",
        default="reconciler/status",
        metavar="BRANCH",
        help="branch of the spec repo status is written to",
    )
    watch.add_argument(
        "--status-remote",
        default="origin",
        metavar="REMOTE",
        help="remote the status branch is pushed to, when the spec repo has it",
    )
    watch.add_argument("--no-status", action="store_true", help="do not write status back")
    watch.add_argument(
        "--dashboard",
        type=Path,
        default=None,
        metavar="DIR",
        help="regenerate the static dashboard in DIR after each pass",
    )
    watch.set_defaults(run=commands.watch)

    workers = sub.add_parser("workers", help="list worker hosts, slots, health, running batches")
    _add_specs(workers)
    _add_store(workers)
    _add_hosts(workers)
    workers.add_argument("--json", action="store_true", help="machine-readable output")
    workers.set_defaults(run=commands.workers)

    store = sub.add_parser("store", help="maintain the result store")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    reindex = store_sub.add_parser("reindex", help="rebuild the SQLite index from the files")
    _add_specs(reindex)
    _add_store(reindex)
    reindex.set_defaults(run=commands.store_reindex)
    clear = store_sub.add_parser(
        "clear-cache",
        help="remove cached test listings and dependency exports (rebuilt on the next plan)",
    )
    _add_specs(clear)
    _add_store(clear)
    clear.set_defaults(run=commands.store_clear_cache)
    verify = store_sub.add_parser("verify", help="check files, identities, index and logs")
    _add_specs(verify)
    _add_store(verify)
    verify.set_defaults(run=commands.store_verify)

    # Command families that live in their own modules register themselves here.
    for family in COMMAND_FAMILIES:
        family.register(sub, add_specs=_add_specs, add_store=_add_store)

    schemas = sub.add_parser("schemas", help="write or check the JSON Schemas of the specs")
    schemas.add_argument("dir", type=Path, nargs="?", default=Path("schemas"))
    mode = schemas.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="(re)generate the files")
    mode.add_argument("--check", action="store_true", help="exit 1 when the files are stale")
    schemas.set_defaults(run=commands.schemas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (_Parser.error)
        return done.code if isinstance(done.code, int) else int(ExitCode.USER_ERROR)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    run: Command = args.run
    try:
        return run(args)
    except ReconcilerError as error:
        print(f"error: {error}" if "\n" not in str(error) else str(error), file=sys.stderr)
        if getattr(args, "detailed_exitcode", False):
            # As terraform's: 0 nothing to do, 2 work pending, 1 any error.
            return int(ExitCode.USER_ERROR)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: say so in one line, traceback on request
        if os.environ.get("RECONCILER_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error: {type(error).__name__}: {error} "
            "(a bug in reconciler; rerun with RECONCILER_DEBUG=1 and report the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


__all__ = ["ExitCode", "build_parser", "main"]
