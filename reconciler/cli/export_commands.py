"""`reconciler export kcidb`: hand stored results to KCIDB, the kernel CI reporting database.

A command family (see `COMMAND_FAMILIES` in `cli.main`): `export` is a group so that other
formats can join it without new top-level commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.app.kcidb import (
    DEFAULT_ORIGIN,
    KcidbOptions,
    render_report,
    report_counts,
    run_export_kcidb,
)
from reconciler.app.planning import Workspace
from reconciler.model.errors import ExitCode

AddArguments = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, *, add_specs: AddArguments, add_store: AddArguments) -> None:
    export = sub.add_parser("export", help="write stored results in another system's format")
    formats = export.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    kcidb = formats.add_parser(
        "kcidb",
        help="KCIDB v5 JSON (checkouts, builds, tests) of the tracked commits and baselines",
    )
    add_specs(kcidb)
    add_store(kcidb)
    kcidb.add_argument(
        "--origin",
        default=DEFAULT_ORIGIN,
        metavar="NAME",
        help=f"KCIDB origin: prefix of every id, [a-z0-9_]+ (default: {DEFAULT_ORIGIN})",
    )
    kcidb.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="write here (default: stdout)"
    )
    kcidb.add_argument(
        "--log-url-base",
        default=None,
        metavar="URL",
        help="where `reconciler dashboard` output is served: tests get log_url URL/logs/ID.txt",
    )
    kcidb.add_argument(
        "--no-fetch", action="store_true", help="use cached mirrors of remote repos as they are"
    )
    kcidb.set_defaults(run=export_kcidb)


def export_kcidb(args: argparse.Namespace) -> int:
    workspace = Workspace.for_specs(args.specs, store=args.store)
    options = KcidbOptions(origin=args.origin, log_url_base=args.log_url_base)
    report = run_export_kcidb(workspace, options=options, out=args.out, fetch=not args.no_fetch)
    if args.out is None:
        sys.stdout.write(render_report(report))
    else:
        counts = ", ".join(f"{n} {kind}" for kind, n in report_counts(report))
        print(
            f"{args.out}: wrote KCIDB {report['version']['major']}.{report['version']['minor']}"
            f" ({counts})"
        )
    return ExitCode.OK
