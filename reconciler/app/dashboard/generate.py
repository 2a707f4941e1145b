"""`reconciler dashboard`: the static site, from specs, desired state and store to files.

Pages are Jinja2 templates with autoescaping on: every string from git, specs or logs reaches
the HTML escaped, and logs themselves are published as `.txt` files, which browsers show as
text. The site is staged and swapped in whole by `SiteWriter`; `watch` calls `write_dashboard`
after each pass and gets back only the files that changed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from reconciler import __version__
from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.dashboard.charts import trend_svg
from reconciler.app.dashboard.compare_view import compare_branches
from reconciler.app.dashboard.favicon import favicon_ico
from reconciler.app.dashboard.pages import (
    Page,
    baselines_trend,
    branch_page,
    branch_trend,
    commit_page,
    compare_page,
    index_page,
)
from reconciler.app.dashboard.site import SiteWriter
from reconciler.app.dashboard.view import (
    COUNT_COLUMNS,
    FAILING,
    DashboardView,
    last_passes,
    read_view,
)
from reconciler.app.planning import Planner, Workspace
from reconciler.app.queries import StoreQueries
from reconciler.app.query_remote import commit_path, export_api
from reconciler.core.status_render import branch_file_stem
from reconciler.model.desired import DesiredState
from reconciler.model.errors import StoreError
from reconciler.model.results import Status
from reconciler.model.specset import SpecSet

log = logging.getLogger(__name__)

TEMPLATES = "reconciler.app.dashboard"
STATIC_FILES = ("style.css", "filter.js", "favicon.svg")
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 8192
TAIL_STATUSES = FAILING | {Status.ERROR}


@dataclass(frozen=True)
class DashboardReport:
    out: Path
    changed: list[Path] = field(default_factory=list)
    """Files written (new or different), relative to `out`."""
    removed: list[Path] = field(default_factory=list)
    """Files of the previous site that the new one no longer has, relative to `out`."""


def template_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATES, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def write_dashboard(
    out: Path, *, specs: SpecSet, desired: DesiredState, store: ResultStore
) -> DashboardReport:
    """Write the dashboard of `desired` (as stored in `store`) to `out`; see the module doc."""
    view = read_view(specs=specs, desired=desired, store=store)
    environment = template_environment()
    with SiteWriter(out) as site:
        pages = _Pages(site, environment)
        for name in STATIC_FILES:
            data = resources.files(TEMPLATES).joinpath("templates", "static", name).read_bytes()
            site.add(f"static/{name}", data)
        site.add("favicon.ico", favicon_ico())
        pages.render("index.html", "index.html", index_page(view), api="api/branches.json")
        if view.baselines:
            chart = trend_svg(baselines_trend(view), chart_id="baselines", title="Baselines")
            site.add("baselines.svg", chart)
        for name in view.branches:
            chart = trend_svg(branch_trend(view, name), chart_id=f"branch-{name}", title=name)
            site.add(f"branches/{name}.svg", chart)
            api = f"api/branches/{branch_file_stem(name)}.json"
            pages.render("branch.html", f"branches/{name}.html", branch_page(view, name), api=api)
        passes = last_passes(view)
        for sha in view.commits:
            tails = _write_logs(site, view=view, sha=sha, store=store)
            page = commit_page(view, sha, last_pass=passes.get(sha, {}), log_tails=tails)
            pages.render("commit.html", f"commits/{sha}.html", page, api=commit_path(sha))
        comparisons = compare_branches(specs=specs, desired=desired, store=store)
        pages.render("compare.html", "compare.html", compare_page(comparisons))
        _add_query_api(site, queries=StoreQueries(specs=specs, desired=desired, store=store))
        site.publish()
        return DashboardReport(out, changed=list(site.changed), removed=list(site.removed))


class _Pages:
    def __init__(self, site: SiteWriter, environment: jinja2.Environment) -> None:
        self.site = site
        self.environment = environment

    def render(self, template: str, path: str, page: Page, *, api: str | None = None) -> None:
        """Render `page` to `path`; `api` is its document in the query API, when it has one."""
        root = "../" * path.count("/")
        json_name = write_page_json(self.site, page_path=path, page=page)
        context: dict[str, Any] = {
            **page,
            "root": root,
            "json_href": json_name,
            "api_href": None if api is None else root + api,
            "version": __version__,
            "columns": COUNT_COLUMNS,
        }
        html = self.environment.get_template(template).render(context)
        self.site.add(path, html.encode())


def write_page_json(site: SiteWriter, *, page_path: str, page: Page) -> str:
    """The page's data beside it (`branches/main.html` → `branches/main.json`); returns the
    JSON file's name relative to the page, for the page to link."""
    json_path = page_path.removesuffix(".html") + ".json"
    text = json.dumps(page, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    site.add(json_path, text.encode())
    return json_path.rsplit("/", 1)[-1]


def _add_query_api(site: SiteWriter, *, queries: StoreQueries) -> None:
    """The query API (`api/`, read by `reconciler ... --remote URL`), written by its owner,
    `export_api`, into a scratch directory beside the site and staged from there, so its files
    get the same unchanged-files-kept, swap-in-whole treatment as the pages."""
    parent = site.out.absolute().parent
    with tempfile.TemporaryDirectory(prefix=f".{site.out.name}.api.", dir=parent) as scratch:
        root = Path(scratch)
        export_api(root, queries=queries)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                site.add(path.relative_to(root).as_posix(), path.read_bytes())


def _write_logs(
    site: SiteWriter, *, view: DashboardView, sha: str, store: ResultStore
) -> dict[str, str]:
    """Write `logs/<result id>.txt` for the commit's results; returns the tails of failures."""
    tails: dict[str, str] = {}
    commit = view.commits[sha]
    statuses = {row.result_id: row.status for row in commit.rows if row.result_id}
    for result_id, hashes in commit.logs.items():
        parts = [_read_log(store, log_hash) for log_hash in hashes]
        if len(parts) == 1:
            data = parts[0]
        else:
            data = b"".join(
                f"===== log {n} of {len(parts)} =====\n".encode() + part
                for n, part in enumerate(parts, start=1)
            )
        site.add(f"logs/{result_id}.txt", data)
        if statuses.get(result_id) in TAIL_STATUSES:
            tails[result_id] = _tail(parts[0])
    return tails


def _read_log(store: ResultStore, log_hash: str) -> bytes:
    try:
        return store.read_log(log_hash)
    except StoreError as exc:
        # One damaged blob must not take the whole dashboard down; the page says what is wrong.
        log.warning("log %s: %s", log_hash, exc)
        return f"[log {log_hash} cannot be read: {exc}; run `reconciler store verify`]\n".encode()


def _tail(data: bytes) -> str:
    text = data[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace").replace("\0", "")
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def run_dashboard(workspace: Workspace, *, out: Path, fetch: bool = True) -> DashboardReport:
    """Resolve the specs, then `write_dashboard` from the workspace's store."""
    specs = load_specs(workspace.spec_dir)
    planner = Planner(
        git=GitResolver(workspace.git_cache, fetch=fetch),
        cache=SqliteEnumerationCache(workspace.enumeration_cache),
        dependency_root=workspace.dependency_trees,
    )
    desired = planner.desired(specs)
    with ResultStore(workspace.store_dir) as store:
        return write_dashboard(out, specs=specs, desired=desired, store=store)
