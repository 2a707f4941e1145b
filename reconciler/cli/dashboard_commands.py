"""`reconciler dashboard --out DIR`: write the static dashboard site.

A command family (see `COMMAND_FAMILIES` in `cli.main`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.app.planning import Workspace
from reconciler.model.errors import ExitCode

AddArguments = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, *, add_specs: AddArguments, add_store: AddArguments) -> None:
    dashboard = sub.add_parser(
        "dashboard", help="write the static dashboard (HTML + JSON) of the stored results"
    )
    add_specs(dashboard)
    add_store(dashboard)
    dashboard.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="site directory (replaced whole)"
    )
    dashboard.add_argument(
        "--no-fetch", action="store_true", help="use cached mirrors of remote repos as they are"
    )
    dashboard.set_defaults(run=dashboard_command)


def dashboard_command(args: argparse.Namespace) -> int:
    # Imported here: jinja2, pygal and the generator cost ~0.1 s, which every other command
    # would pay at start-up, since families are imported to build the parser.
    from reconciler.app.dashboard import run_dashboard

    workspace = Workspace.for_specs(args.specs, store=args.store)
    report = run_dashboard(workspace, out=args.out, fetch=not args.no_fetch)
    if report.changed or report.removed:
        print(f"{args.out}: {len(report.changed)} files written, {len(report.removed)} removed")
    else:
        print(f"{args.out}: up to date")
    return ExitCode.OK
