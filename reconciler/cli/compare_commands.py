"""`compare` and `explain`: queries over stored results, registered as a command family.

Each function parses nothing itself and decides nothing: it calls one app function, prints what
it renders and returns its exit code (`compare` returns its gate: 0 ok, 1 regression, 2 results
incomplete).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from reconciler.adapters.store.files import ResultStore
from reconciler.app import compare as compare_app
from reconciler.app import explain as explain_app
from reconciler.app.planning import Workspace
from reconciler.model.errors import ExitCode

AddOptions = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, *, add_specs: AddOptions, add_store: AddOptions) -> None:
    compare = sub.add_parser(
        "compare",
        help="classify results of B against A per profile: regressions, fixes, flaky, missing",
        description="Sides: BRANCH (its newest commit), BRANCH@COMMIT, COMMIT (4+ hex, "
        "wherever the specs test it) or baseline:NAME. Exit 0: no regression; 1: a "
        "regression; 2: no regression but results are missing (run apply).",
    )
    add_specs(compare)
    add_store(compare)
    compare.add_argument("a", metavar="A", help="the reference side, e.g. baseline:v1.0")
    compare.add_argument("b", metavar="B", help="the side under test, e.g. main@8bb4635")
    compare.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="compare only this profile (repeatable; default: every profile of either side)",
    )
    compare.add_argument("--format", choices=tuple(compare_app.RENDERERS), default="text")
    compare.add_argument(
        "--no-fetch", action="store_true", help="use cached mirrors of remote repos as they are"
    )
    compare.set_defaults(run=run_compare)

    explain = sub.add_parser(
        "explain",
        help="show a result's or build's identity inputs, or which inputs two of them differ in",
    )
    add_specs(explain)
    add_store(explain)
    explain.add_argument("identity", metavar="ID", help="result or build id, or 6+ hex of it")
    explain.add_argument("other", metavar="OTHER", nargs="?", help="a second id to diff against")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(run=run_explain)


def _workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.for_specs(args.specs, store=args.store)


def run_compare(args: argparse.Namespace) -> int:
    report = compare_app.run_compare(
        _workspace(args), a=args.a, b=args.b, profiles=args.profile, fetch=not args.no_fetch
    )
    sys.stdout.write(compare_app.RENDERERS[args.format](report))
    return int(report.comparison.gate)


def run_explain(args: argparse.Namespace) -> int:
    with ResultStore(_workspace(args).store_dir) as store:
        explanation = explain_app.explain(store, args.identity, args.other)
    render = explain_app.render_json if args.json else explain_app.render_text
    sys.stdout.write(render(explanation))
    return ExitCode.OK
