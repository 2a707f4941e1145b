"""One function per subcommand: decide nothing, call the app, print, return an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.schema_files import schema_drift, write_schemas
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.applying import HostOptions, run_apply
from reconciler.app.blocked_render import blocked_text
from reconciler.app.cache_maintenance import clear_cache
from reconciler.app.plan_diff import run_plan_diff
from reconciler.app.plan_render import RENDERERS, summary_line
from reconciler.app.planning import Planner, Workspace
from reconciler.app.progress import ApplyProgress, render_summary
from reconciler.app.watch import WatchOptions, run_watch
from reconciler.app.workers import list_workers, render_workers
from reconciler.model.errors import ExitCode, StoreError, UserError


def _workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.for_specs(args.specs, store=getattr(args, "store", None))


def validate(args: argparse.Namespace) -> int:
    specs = load_specs(args.specs)
    counts = {
        "repos": len(specs.repos),
        "branches": len(specs.branches),
        "test groups": len(specs.test_groups),
        "profiles": len(specs.profiles),
        "baselines": len(specs.baselines),
        "harnesses": len(specs.harnesses),
        "worker pools": len(specs.worker_pools),
    }
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    print(f"{args.specs}: valid ({summary})")
    return ExitCode.OK


def plan(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    base, head = getattr(args, "base", None), getattr(args, "head", None)
    if (base is None) != (head is None):
        raise UserError("--base and --head go together", hint="give both revisions, or neither")
    if base is not None and head is not None:
        text, diff = run_plan_diff(
            workspace, base=base, head=head, fmt=args.format, fetch=not args.no_fetch
        )
        sys.stdout.write(text)
        if diff.blocked:
            return ExitCode.USER_ERROR
        pending = diff.builds.added_to_run or diff.results.added_to_run
        return ExitCode.PENDING if args.detailed_exitcode and pending else ExitCode.OK
    specs = load_specs(workspace.spec_dir)
    planner = Planner(
        git=GitResolver(workspace.git_cache, fetch=not args.no_fetch),
        cache=SqliteEnumerationCache(workspace.enumeration_cache),
        dependency_root=workspace.dependency_trees,
    )
    desired = planner.desired(specs)
    with ResultStore(workspace.store_dir) as store:
        the_plan = planner.plan(desired, store.index.snapshot(desired))
    sys.stdout.write(RENDERERS[args.format](the_plan))
    if the_plan.partly_blocked:
        # Printed in full, but something the specs ask for cannot be planned: a test file, a
        # harness dependency or a toolchain to fix. A gate must not pass on it.
        return ExitCode.USER_ERROR
    if args.detailed_exitcode and the_plan.has_work:
        return ExitCode.PENDING
    return ExitCode.OK


def store_reindex(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    with ResultStore(workspace.store_dir) as store:
        counts = store.index.reindex()
    print(f"{workspace.store_dir}: reindexed {counts.results} results, {counts.builds} builds")
    return ExitCode.OK


def store_clear_cache(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    cleared = clear_cache(workspace)
    print(
        f"{workspace.cache_dir}: removed {cleared.listings} cached listings and"
        f" {cleared.trees} dependency trees; results, builds and logs are untouched"
    )
    return ExitCode.OK


def store_verify(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    with ResultStore(workspace.store_dir, quick_check=True) as store:
        problems = store.index.verify()
    for problem in problems:
        print(problem)
    if problems:
        raise StoreError(
            f"{len(problems)} problems in {workspace.store_dir}",
            hint="`reconciler store reindex` repairs the index; damaged files need restoring",
        )
    print(f"{workspace.store_dir}: ok")
    return ExitCode.OK


def schemas(args: argparse.Namespace) -> int:
    if args.write:
        for path in write_schemas(args.dir):
            print(f"wrote {path}")
        return ExitCode.OK
    drift = schema_drift(args.dir)
    for name in drift:
        print(f"{args.dir / name}: differs from the models", file=sys.stderr)
    if drift:
        print("run `make schemas` to regenerate", file=sys.stderr)
        return ExitCode.USER_ERROR
    print(f"{args.dir}: up to date")
    return ExitCode.OK


def _host_options(args: argparse.Namespace) -> HostOptions:
    return HostOptions(
        known_hosts=args.known_hosts,
        accept_new=args.accept_new_host_keys,
        local_slots=args.local_slots,
    )


def apply(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    with ApplyProgress() as progress:
        report = run_apply(
            workspace,
            options=_host_options(args),
            fetch=not args.no_fetch,
            events=progress.events(),
        )
    print(render_summary(report.summary))
    print()
    sys.stdout.write(report.commits)
    if report.remaining.partly_blocked:
        # Everything else ran; waiting will not unblock these, a fix will.
        print("\n".join(blocked_text(report.remaining.blocked)), file=sys.stderr)
        return ExitCode.USER_ERROR
    if report.remaining.has_work:
        print(f"\nIncomplete: {summary_line(report.remaining)}", file=sys.stderr)
        return ExitCode.PENDING
    return ExitCode.OK


def reconcile(args: argparse.Namespace) -> int:
    args.format = "text"
    args.detailed_exitcode = False
    plan(args)
    print()
    return apply(args)


def workers(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    specs = load_specs(workspace.spec_dir)
    rows = list_workers(workspace, specs=specs, options=_host_options(args))
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=2))
    else:
        sys.stdout.write(render_workers(rows))
    return ExitCode.OK


def watch(args: argparse.Namespace) -> int:
    # A service's log is its interface: one line per pass, whatever -v says.
    logging.getLogger("reconciler.app.watch").setLevel(logging.INFO)
    defaults = WatchOptions()
    options = WatchOptions(
        interval=args.interval,
        fetch_interval=args.fetch_interval,
        debounce=args.debounce,
        once=args.once,
        host_id=args.host_id or defaults.host_id,
        status=not args.no_status,
        status_branch=args.status_branch,
        status_remote=args.status_remote,
        dashboard=args.dashboard,
    )
    return run_watch(_workspace(args), options=options, hosts=_host_options(args))
