"""The query commands over a dashboard's published JSON (`--remote URL`), and the export that
publishes it.

A developer without the store at hand asks the farm's dashboard instead. The dashboard is
static files, so the API is files too, written by `export_api` (the dashboard generator calls
it: one source of truth for the layout) and read by `RemoteQueries`, which answers with the very
values `StoreQueries` does, so `--json` prints identical documents either way.

CONTRACT (paths relative to the dashboard's base URL; JSON is UTF-8, `as_json()` of the
`app.query_model` value named):

- `api/branches.json`: `Branches`: `{"branches": [{"name", "kind": "branch"|"baseline",
  "ref", "suspended", "commit": full sha|null, "subject"|null, "counts"|null}]}`, where counts
  are `{"pass", "fail", "skip", "timeout", "error", "pending", "total", "duration": s|null}`.
- `api/branches/<stem>.json`: `BranchLog` of every branch and baseline: `{"branch", "kind",
  "suspended", "commits": [{"commit", "subject", "committed_at", "tested", "counts",
  "profiles": {profile: counts}}]}`, newest first; `<stem>` is
  `core.status_render.branch_file_stem(name)` (`fs/next` -> `fs%2Fnext`); a branch and a
  baseline of the same name share the file, and the branch wins.
- `api/commits/index.json`: `{"commits": [full sha, ...]}`, sorted: every commit of every
  window, so a prefix resolves (and is found ambiguous) exactly as locally.
- `api/commits/<full sha>.json`: `CommitResults`: `{"commit", "subject", "origins": [...],
  "counts", "tests": [{"test", "subtest", "profile", "status", "duration", "result":
  id|null}]}`, failures first (fail, timeout, error, pending, skip, pass).
- `api/commits/<full sha>/logs/<result id>.txt`: the result's first attempt's log, its bytes
  as stored (the whole batch log; clients cut it per subtest as `logs` does), and
  `<result id>.attempt-<N>.txt` for attempts N >= 2. A result without a log has no file
  (a 404 reads as "no log stored"); `export_api(logs="failures")` publishes only the logs of
  fail, timeout and error results.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from reconciler.adapters.store.atomic import write_atomic
from reconciler.app.queries import StoreQueries, logs_of, resolve_prefix
from reconciler.app.query_model import (
    FAILURES,
    Branches,
    BranchLog,
    CommitLogs,
    CommitResults,
    FailureListing,
    Json,
    TestRow,
)
from reconciler.core.status_render import branch_file_stem
from reconciler.model.errors import InfrastructureError, UserError

DEFAULT_TIMEOUT = 30.0
LogPolicy = Literal["all", "failures", "none"]


def render_json(document: Json) -> bytes:
    """How the API files and `--json` print a document."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def commit_path(commit: str) -> str:
    return f"api/commits/{commit}.json"


def log_path(commit: str, result: str, attempt: int) -> str:
    suffix = "" if attempt == 1 else f".attempt-{attempt}"
    return f"api/commits/{commit}/logs/{result}{suffix}.txt"


def export_api(out_dir: Path, *, queries: StoreQueries, logs: LogPolicy = "all") -> int:
    """Write the API files (see CONTRACT) for `queries` under `out_dir`; returns how many."""
    files: dict[str, bytes] = {"api/branches.json": render_json(queries.branches().as_json())}
    names = {**dict.fromkeys(queries.specs.baselines), **dict.fromkeys(queries.specs.branches)}
    for name in names:
        stem = branch_file_stem(name)
        files[f"api/branches/{stem}.json"] = render_json(queries.branch_log(name).as_json())
    commits = queries.known_commits()
    files["api/commits/index.json"] = render_json({"commits": list(commits)})
    for path, data in files.items():
        write_atomic(out_dir / path, data)
    written = len(files)
    for commit in commits:
        results = queries.commit_results(commit)
        write_atomic(out_dir / commit_path(commit), render_json(results.as_json()))
        written += 1
        for row in results.tests:
            if row.result is None or logs == "none":
                continue
            if logs == "failures" and row.status not in FAILURES:
                continue
            record = queries.store.get_result(row.result)
            for number, attempt in enumerate(record.attempts if record else [], start=1):
                if attempt.log is not None:
                    data = queries.store.read_log(attempt.log)
                    write_atomic(out_dir / log_path(commit, row.result, number), data)
                    written += 1
    return written


Fetch = Callable[[str, float], bytes | None]
"""(url, timeout) -> body, or None for a 404; raises InfrastructureError otherwise."""


def http_fetch(url: str, timeout: float) -> bytes | None:
    """GET over http(s) with urllib; only a 404 is an answer ("not there"), the rest is the
    infrastructure's fault (exit 3)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise InfrastructureError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InfrastructureError(
            f"cannot read {url}: {reason}", hint="check the dashboard URL and the network"
        ) from exc


class RemoteQueries:
    """The query commands answered from a dashboard's API files."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, fetch: Fetch = http_fetch
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise UserError(f"--remote {url!r}: not an http or https URL")
        self.base = url if url.endswith("/") else url + "/"
        self.timeout = timeout
        self._fetch = fetch

    def _get(self, path: str) -> bytes | None:
        return self._fetch(urllib.parse.urljoin(self.base, path), self.timeout)

    def _json(self, path: str, *, missing: str) -> Any:
        body = self._get(path)
        if body is None:
            raise UserError(missing)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise InfrastructureError(
                f"{self.base}{path}: not JSON ({exc})", hint="is this a reconciler dashboard?"
            ) from exc

    def branches(self) -> Branches:
        missing = f"{self.base}api/branches.json is missing: not a reconciler dashboard?"
        return Branches.from_json(self._json("api/branches.json", missing=missing))

    def branch_log(self, branch: str) -> BranchLog:
        stem = urllib.parse.quote(branch_file_stem(branch), safe="")
        body = self._get(f"api/branches/{stem}.json")
        if body is None:
            known = ", ".join(row.name for row in self.branches().branches) or "none"
            raise UserError(f"no branch or baseline {branch!r}", hint=f"known: {known}")
        return BranchLog.from_json(json.loads(body))

    def known_commits(self) -> tuple[str, ...]:
        index = self._json("api/commits/index.json", missing="the dashboard lists no commits")
        return tuple(index["commits"])

    def resolve_commit(self, prefix: str) -> str:
        return resolve_prefix(prefix, self.known_commits())

    def commit_results(self, commit_prefix: str) -> CommitResults:
        commit = self.resolve_commit(commit_prefix)
        missing = f"the dashboard lists {commit} but has no page for it"
        return CommitResults.from_json(self._json(commit_path(commit), missing=missing))

    def commit_logs(
        self,
        commit_prefix: str,
        test: str | None = None,
        *,
        full: bool = False,
        attempt: int = 1,
        profile: str | None = None,
    ) -> FailureListing | CommitLogs:
        results = self.commit_results(commit_prefix).with_profile(profile)

        def fetch(row: TestRow) -> bytes | None:
            assert row.result is not None  # select_logs keeps stored rows only
            return self._get(log_path(results.commit, row.result, attempt))

        return logs_of(results, test=test, profile=profile, attempt=attempt, full=full, fetch=fetch)
