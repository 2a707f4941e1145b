"""`reconciler import fstests|ktest|kdevops-archive`: bring existing results into the store.

With `--branch B --commit REV` or `--baseline NAME` (plus `--profile`, `--group`) the results
get exactly the identities the plan asks for and are reused; without them they are archived
under identities no plan can ask for (see `reconciler.app.importers`). Exit 0 when imported,
1 for a bad input (nothing is written), 3 when the store cannot be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.app.importers import (
    ImportKind,
    ImportReport,
    ImportRequest,
    KnownInputs,
    MatchRequest,
    config_file_sha256,
    render_report,
    run_import,
)
from reconciler.app.planning import Workspace
from reconciler.model.errors import ExitCode, UserError

AddOptions = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, *, add_specs: AddOptions, add_store: AddOptions) -> None:
    parser = sub.add_parser("import", help="bring existing fstests, ktest, kdevops results in")
    kinds = parser.add_subparsers(dest="import_kind", required=True, metavar="KIND")
    for name, kind, source_help, help_text in (
        ("fstests", ImportKind.FSTESTS, "fstests results dir (RESULT_BASE)", "an fstests run"),
        ("ktest", ImportKind.KTEST, "ktest CI output: <commit>/<result key>/", "ktest CI results"),
        (
            "kdevops-archive",
            ImportKind.KDEVOPS,
            "tarball of <kernel>/<section>/ fstests results",
            "a kdevops results archive",
        ),
    ):
        command = kinds.add_parser(name, help=f"import {help_text}")
        command.add_argument("source", type=Path, metavar="PATH", help=source_help)
        add_specs(command)
        add_store(command)
        _add_match_options(command)
        _add_known_options(command, kind=kind)
        if kind is ImportKind.KDEVOPS:
            summary = command.add_mutually_exclusive_group()
            summary.add_argument(
                "--summary", type=Path, metavar="FILE", help="commit message to cross-check with"
            )
            summary.add_argument(
                "--commit-message", metavar="TEXT", help="the commit message text itself"
            )
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.set_defaults(run=import_results, import_kind_value=kind)


def _add_match_options(command: argparse.ArgumentParser) -> None:
    match = command.add_argument_group("matched import (reused by the plan)")
    where = match.add_mutually_exclusive_group()
    where.add_argument("--branch", metavar="B", help="Branch spec the results belong to")
    where.add_argument("--baseline", metavar="NAME", help="Baseline spec the results belong to")
    match.add_argument("--commit", metavar="REV", help="commit the results are of")
    match.add_argument("--profile", metavar="P", help="Profile the results ran under")
    match.add_argument("--group", metavar="G", help="TestGroup, when the choice is ambiguous")
    match.add_argument(
        "--no-fetch", action="store_true", help="use cached mirrors of remote repos as they are"
    )


def _add_known_options(command: argparse.ArgumentParser, *, kind: ImportKind) -> None:
    known = command.add_argument_group("archival import (never reused; unknown inputs recorded)")
    known.add_argument("--kernel-tree", metavar="HASH", help="git tree hash of the kernel source")
    known.add_argument(
        "--kernel-version",
        metavar="STR",
        help="kernel version (kdevops: selects the archive's kernel directory)",
    )
    known.add_argument("--config", type=Path, metavar="FILE", help="kernel .config used")
    known.add_argument("--arch", metavar="ARCH")
    if kind is not ImportKind.KTEST:
        known.add_argument("--section", metavar="S", help="fstests config section")
        known.add_argument("--fstype", metavar="FS")
        known.add_argument("--mkfs-options", metavar="OPTS")
        known.add_argument("--mount-options", metavar="OPTS")


def import_results(args: argparse.Namespace) -> int:
    kind: ImportKind = args.import_kind_value
    matched = args.branch is not None or args.baseline is not None
    if not matched and (args.commit or args.profile or args.group):
        raise UserError(
            "--commit, --profile and --group place results in a slot of the specs",
            hint="add --branch B or --baseline NAME, or drop them for an archival import",
        )
    runtime = {
        name: value
        for name in ("fstype", "mkfs_options", "mount_options")
        if (value := getattr(args, name, None)) is not None
    }
    known = KnownInputs(
        kernel_tree=args.kernel_tree,
        kernel_version=args.kernel_version,
        config_sha256=config_file_sha256(args.config) if args.config else None,
        arch=args.arch,
        runtime=runtime,
    )
    request = ImportRequest(
        kind=kind,
        source=args.source,
        workspace=Workspace.for_specs(args.specs, store=args.store),
        match=MatchRequest(
            branch=args.branch,
            baseline=args.baseline,
            commit=args.commit,
            profile=args.profile,
            group=args.group,
            fetch=not args.no_fetch,
        )
        if matched
        else None,
        known=known,
        section=getattr(args, "section", None),
        summary=_summary_text(args),
    )
    report = run_import(request)
    if args.json:
        print(json.dumps(_as_json(report), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_report(report, source=str(args.source)))
    return ExitCode.OK


def _summary_text(args: argparse.Namespace) -> str | None:
    path: Path | None = getattr(args, "summary", None)
    if path is not None:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UserError(f"cannot read summary {path}: {exc.strerror or exc}") from exc
    text: str | None = getattr(args, "commit_message", None)
    return text


def _as_json(report: ImportReport) -> dict[str, Any]:
    return {
        "imported": {status.value: count for status, count in report.imported.items()},
        "attempts_added": report.attempts_added,
        "already_stored": report.already_stored,
        "not_desired": list(report.not_desired),
        "incomplete": list(report.incomplete),
        "duplicates": list(report.duplicates),
        "notes": list(report.notes),
    }
