"""`branches`, `log`, `show`, `logs` on the quickstart farm after a real `reconciler apply`: real
git, real harness runs (tests/arith.t:subtract fails at 8bb4635 and 07f211e), real store; and
the same answers over HTTP from the files `export_api` writes, served by a real HTTP server."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.app.log_slices import slice_log
from reconciler.app.planning import Workspace
from reconciler.app.queries import local_queries, resolve_prefix
from reconciler.app.query_remote import export_api
from reconciler.app.query_render import format_duration
from reconciler.app.text_safety import terminal_safe
from reconciler.cli import main as cli_main
from reconciler.model.errors import UserError

Run = Callable[..., tuple[int, str, str]]
BROKEN = "8bb4635cbf83f624890cf0f7ab4548ca4f8ab10b"


@pytest.fixture(scope="module")
def farm(quickstart_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart farm with every desired result run once by `reconciler apply`."""
    farm = tmp_path_factory.mktemp("queries") / "farm"
    shutil.copytree(quickstart_template, farm, symlinks=True)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--specs", str(farm / "specs")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return farm


@pytest.fixture
def run(farm: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """`reconciler COMMAND ... --specs <farm>/specs`."""

    def invoke(*argv: str, remote: str | None = None) -> tuple[int, str, str]:
        where = ["--remote", remote] if remote else ["--specs", str(farm / "specs")]
        code = cli_main.main([*argv, *where])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_log_main_text(run: Run) -> None:
    code, out, err = run("log", "main")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "COMMIT        PASS  FAIL ERROR PENDING  SKIP  DURATION  SUBJECT",
        "201ffca5799e    20     0     0       0     0         -  "
        "calc: a lone '-' is subtraction again",
        "07f211eae2d5    18     2     0       0     0         -  "
        "calc: report where an unknown token is",
        "8bb4635cbf83    18     2     0       0     0         -  calc: accept negative numbers",
        "3c52e3e52110    18     0     0       0     0         -  calc: add division",
        "8fea83028b76    14     0     0       0     0         -  calc: add multiplication",
        "1ae0b1701298    12     0     0       0     0         -  "
        "calc: an RPN calculator with addition and subtraction",
    ]


def test_log_one_profile_and_branches(run: Run) -> None:
    code, out, _ = run("log", "main", "--profile", "debug")
    assert code == 0
    assert out.splitlines()[3] == (
        "8bb4635cbf83     9     1     0       0     0         -  calc: accept negative numbers"
    )
    code, out, _ = run("branches")
    assert code == 0
    assert out.splitlines() == [
        "NAME  KIND      COMMIT        PASS  FAIL ERROR PENDING  SKIP  DURATION  SUBJECT",
        "main  branch    201ffca5799e    20     0     0       0     0         -  "
        "calc: a lone '-' is subtraction again",
        "v1.0  baseline  8fea83028b76    14     0     0       0     0         -  "
        "calc: add multiplication",
    ]


def test_show_text(run: Run) -> None:
    code, out, err = run("show", "8bb4635")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:6] == [
        f"commit {BROKEN}",
        "    calc: accept negative numbers",
        "in: main",
        "",
        "TEST                           PROFILE  STATUS   DURATION",
        "tests/arith.t:subtract         debug    fail            -",
    ]
    assert lines[6] == "tests/arith.t:subtract         default  fail            -"
    assert lines[7] == "tests/arith.t:add              debug    pass            -"
    assert lines[-3:] == [
        "tests/errors.t:unknown_token   default  pass            -",
        "",
        "20 results: 18 pass, 2 fail; duration -",
    ]
    assert len(lines) == 27


def test_json_shapes(run: Run) -> None:
    _, out, _ = run("log", "main", "--json")
    log = json.loads(out)
    assert (log["branch"], log["kind"], log["suspended"]) == ("main", "branch", False)
    assert [c["commit"][:7] for c in log["commits"]][:3] == ["201ffca", "07f211e", "8bb4635"]
    entry = log["commits"][2]
    assert entry["counts"] == {
        "pass": 18,
        "fail": 2,
        "skip": 0,
        "timeout": 0,
        "error": 0,
        "pending": 0,
        "total": 20,
        "duration": None,
    }
    assert sorted(entry["profiles"]) == ["debug", "default"]
    assert entry["tested"] is True
    _, out, _ = run("show", BROKEN[:10], "--json", "--profile", "default")
    show = json.loads(out)
    assert show["commit"] == BROKEN and show["origins"] == ["main"]
    assert show["counts"]["total"] == 10 and show["counts"]["fail"] == 1
    first = show["tests"][0]
    assert {k: first[k] for k in ("test", "subtest", "profile", "status", "duration")} == {
        "test": "tests/arith.t",
        "subtest": "subtract",
        "profile": "default",
        "status": "fail",
        "duration": None,
    }
    assert len(first["result"]) == 64


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("8bb", "error: '8bb' is not a commit prefix (hint: give at least 4 hex digits"),
        ("zzzz", "error: 'zzzz' is not a commit prefix"),
        ("dead", "error: no commit dead in any tracked branch or baseline window"),
    ],
)
def test_bad_prefixes_are_user_errors(run: Run, prefix: str, message: str) -> None:
    code, out, err = run("show", prefix)
    assert (code, out) == (1, "")
    assert err.startswith(message)


def test_ambiguous_prefix_names_the_candidates() -> None:
    known = ["abcd" + "1" * 36, "abcd" + "2" * 36, "ef01" + "3" * 36]
    with pytest.raises(UserError) as caught:
        resolve_prefix("abcd", known)
    assert str(caught.value) == (
        "commit prefix abcd is ambiguous: abcd11111111, abcd22222222 (hint: give more digits)"
    )
    assert resolve_prefix("ABCD2", known) == known[1]


def test_logs_lists_failures_and_shows_the_tap_log(run: Run) -> None:
    code, out, _ = run("logs", "8bb4635")
    assert code == 0
    assert out.splitlines() == [
        "8bb4635cbf83 calc: accept negative numbers: 2 failed",
        "",
        "TEST                    PROFILE  STATUS   DURATION",
        "tests/arith.t:subtract  debug    fail            -",
        "tests/arith.t:subtract  default  fail            -",
        "",
        "show a log: reconciler logs 8bb4635cbf83 TEST [--profile P] [--full]",
    ]
    code, out, err = run("logs", "8bb4635", "tests/arith.t:subtract", "--profile", "default")
    assert (code, err) == (0, "")
    assert out == "not ok 2 - subtract\n# expected '4', got 'calc: 3 values left on the stack'\n"
    code, out, _ = run("logs", "8bb4635", "tests/arith.t:subtract", "--profile", "debug", "--full")
    assert code == 0
    assert out.startswith("TAP version 13\n1..6\nok 1 - add\nnot ok 2 - subtract\n")
    assert "ok 6 - negative\n" in out
    code, out, _ = run("logs", "201ffca", "tests/arith.t:subtract")
    assert code == 0
    assert out.count("==> tests/arith.t:subtract [") == 2
    assert "ok 2 - subtract\n" in out


def test_logs_errors(run: Run) -> None:
    code, _, err = run("logs", "8bb4635", "tests/nope.t")
    assert code == 1 and err.startswith("error: no test 'tests/nope.t'")
    code, _, err = run("logs", "8bb4635", "tests/arith.t:subtract", "--attempt", "2")
    assert code == 1 and "has 1 attempt(s), not 2" in err


@pytest.fixture
def dashboard(farm: Path, tmp_path: Path) -> Iterator[str]:
    """The API files of the farm served over HTTP on 127.0.0.1."""
    site = tmp_path / "site"
    with local_queries(Workspace.for_specs(farm / "specs")) as queries:
        assert export_api(site, queries=queries) > 4
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.mark.parametrize(
    "argv",
    [
        ("branches",),
        ("log", "main"),
        ("log", "v1.0"),
        ("log", "main", "--profile", "debug"),
        ("show", "8bb4635"),
        ("show", "07f211e", "--profile", "default"),
        ("logs", "8bb4635"),
        ("logs", "8bb4635", "tests/arith.t:subtract"),
        ("logs", "07f211e", "tests/arith.t", "--profile", "debug", "--full"),
    ],
)
def test_remote_answers_as_local(run: Run, dashboard: str, argv: tuple[str, ...]) -> None:
    local = run(*argv, "--json")
    remote = run(*argv, "--json", remote=dashboard)
    assert local[0] == 0
    assert remote == local
    assert run(*argv, remote=dashboard) == run(*argv)


def test_remote_errors(run: Run, dashboard: str) -> None:
    code, _, err = run("log", "nope", remote=dashboard)
    assert code == 1 and err.startswith("error: no branch or baseline 'nope' (hint: known: main")
    code, _, err = run("show", "dead", remote=dashboard)
    assert code == 1 and "no commit dead" in err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    code, _, err = run("branches", remote=closed)
    assert code == 3 and err.startswith(f"error: cannot read {closed}api/branches.json")
    code, _, err = run("branches", remote="ftp://example.org/")
    assert code == 1


def test_terminal_safe_escapes_controls() -> None:
    hostile = "ok 1\x1b]0;pwned\x07\r\nline\ttab\x9b31m\u202eevil\n"
    assert terminal_safe(hostile) == "ok 1\\x1b]0;pwned\\x07\nline\ttab\\x9b31m\\u202eevil\n"


def test_slices() -> None:
    ktest = (
        "00001 ========= TEST   first\n"
        "00002 mounting\n"
        "00003 ========= PASSED first in 3s\n"
        "00004 ========= TEST   second\n"
        "00005 BUG: oops\n"
        "00006 ========= FAILED second in 9s\n"
    )
    assert slice_log(ktest, subtest="second") == (
        "00004 ========= TEST   second\n00005 BUG: oops\n00006 ========= FAILED second in 9s\n"
    )
    tap = "1..2\n# Subtest: outer\n    ok 1 - inner\nok 1 - outer\nnot ok 2 - b\n# why\n"
    assert slice_log(tap, subtest="outer") == "# Subtest: outer\n    ok 1 - inner\nok 1 - outer\n"
    assert slice_log(tap, subtest="b") == "not ok 2 - b\n# why\n"
    assert slice_log("plain output\n", subtest="b") is None
    assert [format_duration(s) for s in (None, 1.25, 245, 7380)] == ["-", "1.2s", "4m05s", "2h03m"]
