"""The dashboard in a real headless browser: Debian's chromium driven by playwright.

The generated site is served by http.server on 127.0.0.1, as any static server would serve it.
Every page is loaded and watched for console errors, script errors, failed requests and error
responses; every link found is followed. Playwright's own browser downloads are never used
(`playwright install` cannot run here): CI installs Debian's chromium (.ci/run).
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from reconciler.app.query_remote import RemoteQueries
from tests.dashboard_farm import FAILING_COMMIT, LOG_SCRIPT, SUBJECT, applied_markup_farm
from tests.test_dashboard import generate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Site:
    base: str
    markup_commit: str


@dataclass
class Problems:
    """What went wrong while a page was open: any entry fails the test."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", lambda m: m.type == "error" and self.seen.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.seen.append(f"script error: {e}"))
        page.on("requestfailed", lambda r: self.seen.append(f"failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and self.seen.append(f"HTTP {r.status}: {r.url}"),
        )


@pytest.fixture(scope="module")
def site(quickstart_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("dashboard-browser")
    farm = root / "farm"
    shutil.copytree(quickstart_template, farm, symlinks=True)
    markup_commit = applied_markup_farm(farm)
    out = root / "site"
    generate(farm, out)
    handler = functools.partial(QuietHandler, directory=str(out))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Site(f"http://127.0.0.1:{server.server_address[1]}/", markup_commit)
        finally:
            server.shutdown()
            thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def open_clean(page: Page, url: str) -> Page:
    problems = Problems()
    problems.watch(page)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    assert problems.seen == [], url
    return page


def test_every_page_loads_cleanly_and_every_link_resolves(site: Site, page: Page) -> None:
    problems = Problems()
    problems.watch(page)
    queue = [urljoin(site.base, "index.html")]
    visited: set[str] = set()
    checked: set[str] = set()
    anchors: list[tuple[str, str]] = []
    while queue:
        url = queue.pop()
        if url in visited:
            continue
        visited.add(url)
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
        if urlsplit(url).path.endswith(".html"):
            links = page.eval_on_selector_all(
                "a[href], link[href], img[src], script[src]",
                "nodes => nodes.map(n => n.href || n.src)",
            )
            for link in links:
                target, fragment = urldefrag(link)
                assert target.startswith(site.base), f"{url} links outside the site: {link}"
                if fragment:
                    anchors.append((target, fragment))
                if target.endswith(".html"):
                    queue.append(target)
                elif target not in checked:
                    checked.add(target)
                    fetched = page.request.get(target)
                    assert fetched.status == 200, f"{url} links to {link}: {fetched.status}"
    assert problems.seen == []
    pages = {urlsplit(u).path for u in visited}
    assert {"/index.html", "/compare.html", "/branches/main.html"} <= pages
    assert f"/commits/{FAILING_COMMIT}.html" in pages
    assert any(urlsplit(u).path.startswith("/logs/") for u in checked)
    assert any(u.endswith(".json") for u in checked)
    for target, fragment in anchors:
        page.goto(target)
        assert page.locator(f"[id='{fragment}']").count() == 1, f"{target}#{fragment}"


def test_the_failing_commit_shows_the_failed_subtest(site: Site, page: Page) -> None:
    open_clean(page, urljoin(site.base, f"commits/{FAILING_COMMIT}.html"))
    rows = page.locator("table.tests tbody tr:not(.detail)", has_text="subtract")
    assert rows.count() == 2  # debug and default
    for row in rows.all():
        assert row.get_attribute("data-status") == "fail"
        assert row.locator(".state").inner_text() == "fail"
        # Where it last passed in main's window: "calc: add division".
        assert "3c52e3e52110" in row.inner_text()


def test_the_status_filter_shows_only_the_chosen_status(site: Site, page: Page) -> None:
    open_clean(page, urljoin(site.base, f"commits/{FAILING_COMMIT}.html"))
    rows = page.locator("table.tests tbody tr:not(.detail)")
    total = rows.count()
    assert total == 20
    page.get_by_role("button", name="fail", exact=True).click()
    visible = page.locator("table.tests tbody tr:not(.detail):visible")
    assert visible.count() == 2
    assert {row.get_attribute("data-status") for row in visible.all()} == {"fail"}
    assert page.inner_text("#shown-count") == "2 shown"
    assert page.get_by_role("button", name="fail", exact=True).get_attribute("aria-pressed") == (
        "true"
    )
    page.get_by_role("button", name="pending", exact=True).click()
    assert visible.count() == 0
    page.get_by_role("button", name="all", exact=True).click()
    assert visible.count() == total


def test_markup_in_logs_and_subjects_is_text_and_never_runs(site: Site, page: Page) -> None:
    open_clean(page, urljoin(site.base, f"commits/{site.markup_commit}.html"))
    assert page.locator("p.subject").inner_text() == SUBJECT
    row = page.locator("table.tests tbody tr:not(.detail)", has_text="markup").first
    assert row.get_attribute("data-status") == "fail"
    detail = page.locator("tr.detail", has_text="window.__pwned").first
    detail.locator("summary").click()
    assert LOG_SCRIPT in detail.locator("pre.log-tail").inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main script, main b").count() == 0

    log_href = row.locator("a.log").get_attribute("href")
    assert log_href is not None
    open_clean(page, urljoin(page.url, log_href))
    assert LOG_SCRIPT in page.inner_text("body")
    assert page.evaluate("typeof window.__pwned") == "undefined"

    open_clean(page, urljoin(site.base, "branches/main.html"))
    assert SUBJECT in page.inner_text("table.commits")
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_the_trend_charts_are_drawn(site: Site, page: Page) -> None:
    for path, image in (("branches/main.html", "main.svg"), ("index.html", "baselines.svg")):
        open_clean(page, urljoin(site.base, path))
        chart = page.locator(f"figure.trend img[src='{image}']")
        assert chart.count() == 1
        assert chart.evaluate("img => img.complete && img.naturalWidth > 0")
        response = page.request.get(urljoin(page.url, image))
        assert response.headers["content-type"] == "image/svg+xml"
        assert b"<svg" in response.body()


def test_the_published_query_api_answers_remote_queries(site: Site) -> None:
    remote = RemoteQueries(site.base)
    assert "main" in [row.name for row in remote.branches().branches]
    results = remote.commit_results(FAILING_COMMIT[:7])
    failed = sorted((t.profile, t.test, t.subtest) for t in results.tests if t.status == "fail")
    assert failed == [
        ("debug", "tests/arith.t", "subtract"),
        ("default", "tests/arith.t", "subtract"),
    ]


def test_a_plain_text_log_leaves_no_favicon_404_behind(site: Site, page: Page) -> None:
    # Browsers ask the site root for /favicon.ico on plain-text pages (the logs); a 404 there
    # reaches the console, late enough to be blamed on whichever page opens next.
    open_clean(page, urljoin(site.base, f"commits/{site.markup_commit}.html"))
    href = page.locator("a.log").first.get_attribute("href")
    assert href is not None
    page.wait_for_load_state("networkidle")
    problems = Problems()
    problems.watch(page)
    page.goto(urljoin(page.url, href), wait_until="load")
    page.wait_for_load_state("networkidle")
    assert problems.seen == []
    favicon = page.request.get(urljoin(site.base, "favicon.ico"))
    assert (favicon.status, favicon.headers["content-type"]) == (200, "image/vnd.microsoft.icon")
