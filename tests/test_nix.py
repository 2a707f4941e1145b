"""The Nix packaging and the NixOS service, as far as they can be checked without nixpkgs.

Checked here, with Debian's `nix-instantiate` (.ci/run installs `nix-bin` when it can) and no
network:

- every `.nix` file in the repository parses (`nix-instantiate --parse`, which also rejects
  undefined variables outside `with` blocks);
- the service runs the command the README documents: the ExecStart that nix/module.nix sets is
  built by nix/exec-start.nix from the settings, with nix/defaults.nix as the option defaults;
  both are builtins-only, so they are evaluated here (`nix-instantiate --eval --strict --json`)
  with the defaults and compared with the one `reconciler watch` line of the README's "Deploy
  on the dashboard host" section (program path and host id normalised to the README's), and
  with the README's plain systemd unit;
- the ExecStart quoting survives systemd's own unquoting for hostile values (parsed here by a
  small reimplementation of systemd's rules, not by systemd);
- nix/fetch-specs.sh, which keeps the spec checkout current (kernel-reconciler-specs.service),
  against real git repositories.

Not checked here: nixpkgs is not available offline, so nothing here builds the package,
evaluates module.nix's options and assertions, or renders the unit file. `nix flake check` does
(checks.<system>.package, .smoke and .module), on a machine that can fetch nixpkgs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FETCH_SPECS = ROOT / "nix" / "fetch-specs.sh"
DEPLOY_HEADING = "Deploy on the dashboard host"
PACKAGE = "/nix/store/00000000000000000000000000000000-kernel-reconciler-0.1.0"
NIX_FILES = {"flake.nix", "nix/package.nix", "nix/module.nix", "nix/exec-start.nix"}


@pytest.fixture(scope="session")
def nix_instantiate() -> str:
    """nix-instantiate; a skip only where it cannot be had, a failure where it could be."""
    found = shutil.which("nix-instantiate")
    if found:
        return found
    candidate = _apt_candidate("nix-bin")
    if candidate is None:
        pytest.skip(
            "nix-instantiate is not installed and apt offers no nix-bin package here, "
            "so the .nix files cannot be parsed or evaluated"
        )
    pytest.fail(
        f"nix-instantiate is missing but apt offers nix-bin {candidate}: run .ci/run as root, "
        "or apt-get install nix-bin"
    )


def _apt_candidate(package: str) -> str | None:
    if shutil.which("apt-cache") is None:
        return None
    policy = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"Candidate:\s*(\S+)", policy)
    if match is None or match[1] == "(none)":
        return None
    return match[1]


def nix_eval(nix: str, body: str, **arguments: Any) -> Any:
    """Evaluate `body` with `execStart` and `defaults` (nix/*.nix) and `args` (from JSON).

    The dummy store lets an unprivileged user evaluate without a Nix daemon.
    """
    expression = (
        "{ root, json }: let"
        '  execStart = import (/. + root + "/nix/exec-start.nix");'
        '  defaults = import (/. + root + "/nix/defaults.nix");'
        "  args = builtins.fromJSON json;"
        f" in {body}"
    )
    result = subprocess.run(
        [
            *(nix, "--store", "dummy://", "--eval", "--strict", "--json"),
            *("--argstr", "root", str(ROOT), "--argstr", "json", json.dumps(arguments)),
            *("--expr", expression),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"nix-instantiate --eval failed:\n{result.stderr}"
    return json.loads(result.stdout)


def service_command(nix: str, settings: dict[str, Any]) -> tuple[list[str], str]:
    """The service's argv and ExecStart for the module's defaults overridden by `settings`."""
    value = nix_eval(
        nix,
        "let cfg = defaults // args.settings;"
        " in [ (execStart.watchArgv cfg) (execStart.execStart cfg) ]",
        settings=settings,
    )
    return value[0], value[1]


def nix_files() -> list[str]:
    """Every .nix file of the repository, outside hidden directories (.git, .venv, ...)."""
    found = []
    for directory, subdirectories, names in os.walk(ROOT):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        found += [str(Path(directory, name).relative_to(ROOT)) for name in names]
    return sorted(name for name in found if name.endswith(".nix"))


def test_every_nix_file_parses(nix_instantiate: str) -> None:
    found = nix_files()
    assert set(found) >= NIX_FILES, f"missing .nix files: {sorted(NIX_FILES - set(found))}"
    failures = {}
    for relative in found:
        result = subprocess.run(
            [nix_instantiate, "--store", "dummy://", "--parse", relative],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            failures[relative] = result.stderr.strip()
    assert failures == {}


def _deploy_section() -> list[str]:
    """The lines of the README's deploy section, up to the next heading of its level or above."""
    lines = README.read_text(encoding="utf-8").splitlines()
    section: list[str] | None = None
    level = 0
    fenced = False
    for line in lines:
        heading = None if fenced else re.match(r"(#+)\s+(.*?)\s*$", line)
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if section is None:
            if heading and heading[2] == DEPLOY_HEADING:
                section, level = [], len(heading[1])
            continue
        if heading and len(heading[1]) <= level:
            break
        section.append(line)
    if section is None:
        pytest.fail(
            f'README.md has no "{DEPLOY_HEADING}" section: add it with a fenced block holding '
            "the one `reconciler watch ...` line the NixOS service runs"
        )
    return section


def _fenced_lines(section: list[str]) -> list[str]:
    """Lines inside code fences, with backslash continuations joined."""
    joined: list[str] = []
    fenced = False
    pending = ""
    for line in section:
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return joined


def documented_command() -> list[str]:
    commands = [
        line.strip()
        for line in _fenced_lines(_deploy_section())
        if line.strip().startswith("reconciler watch")
    ]
    assert len(commands) == 1, (
        f'README "{DEPLOY_HEADING}" should show exactly one `reconciler watch` command line '
        f"in a code block, found {commands}"
    )
    return shlex.split(commands[0])


def _host_id(argv: list[str]) -> str:
    return argv[argv.index("--host-id") + 1] if "--host-id" in argv else "HOST"


def test_service_runs_the_documented_command(nix_instantiate: str) -> None:
    documented = documented_command()
    argv, exec_start = service_command(
        nix_instantiate, {"package": PACKAGE, "hostId": _host_id(documented)}
    )
    assert argv[0] == f"{PACKAGE}/bin/reconciler"
    assert ["reconciler", *argv[1:]] == documented
    assert systemd_words(exec_start) == argv


def test_documented_unit_runs_the_documented_command() -> None:
    """The README's plain systemd unit runs the same command, whatever its path and host id."""
    documented = documented_command()
    exec_lines = [
        line.strip().removeprefix("ExecStart=")
        for line in _fenced_lines(_deploy_section())
        if line.strip().startswith("ExecStart=") and " watch " in line
    ]
    assert len(exec_lines) == 1, f"expected one ExecStart= running watch, found {exec_lines}"
    argv = systemd_words(exec_lines[0], keep_specifiers=True)
    assert Path(argv[0]).name == "reconciler"
    normalised = [*argv]
    if "--host-id" in normalised:
        normalised[normalised.index("--host-id") + 1] = _host_id(documented)
    assert normalised[1:] == documented[1:]


HOSTILE = 'it\'s a "host" with %n, $HOME, ${X}, a \\ backslash,\ttab,\nnewline and ünï'


def test_exec_start_survives_systemd_unquoting(nix_instantiate: str) -> None:
    settings = {
        "package": PACKAGE,
        "checkoutPath": "/srv/spec checkout",
        "specsSubdir": "100% specs",
        "storeDir": "/srv/$store",
        "interval": 5,
        "fetchInterval": 7,
        "hostId": HOSTILE,
        "knownHostsFile": "/etc/ssh/known hosts",
        "extraArgs": ["--accept-new-host-keys", "'quoted'", '"double"', ";"],
    }
    argv, exec_start = service_command(nix_instantiate, settings)
    assert argv == [
        f"{PACKAGE}/bin/reconciler",
        "watch",
        "--specs",
        "/srv/spec checkout/100% specs",
        "--store",
        "/srv/$store",
        "--interval",
        "5",
        "--fetch-interval",
        "7",
        "--host-id",
        HOSTILE,
        "--known-hosts",
        "/etc/ssh/known hosts",
        "--accept-new-host-keys",
        "'quoted'",
        '"double"',
        ";",
    ]
    assert "\n" not in exec_start  # one line of the unit file
    assert systemd_words(exec_start) == argv


@pytest.mark.parametrize("subdir", ["", "."])
def test_specs_at_the_top_of_the_checkout(nix_instantiate: str, subdir: str) -> None:
    argv, _ = service_command(
        nix_instantiate, {"package": PACKAGE, "hostId": "h", "specsSubdir": subdir}
    )
    assert argv[2:4] == ["--specs", "/var/lib/kernel-reconciler/specs"]


def test_exec_start_refuses_arguments_it_cannot_quote(nix_instantiate: str) -> None:
    with pytest.raises(AssertionError, match="must be a string or an integer"):
        nix_eval(nix_instantiate, "execStart.escapeSystemdExecArg 1.5")


# systemd's C-style escapes (systemd.syntax(7)) that a JSON string can contain.
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "/": "/", "n": "\n", "t": "\t", "r": "\r"}
_ESCAPES |= {"b": "\b", "f": "\f", "a": "\a", "v": "\v", "s": " "}


def systemd_words(line: str, *, keep_specifiers: bool = False) -> list[str]:
    """Split an Exec*= value as systemd does, for the quoting these files use.

    `%%` and `$$` become `%` and `$`; any other specifier is an error unless kept literally, and
    any other `$` (an environment variable systemd would expand) is an error.
    """
    words: list[str] = []
    index = 0
    while index < len(line):
        if line[index] == " ":
            index += 1
            continue
        word: list[str] = []
        quote = None
        while index < len(line) and (quote or line[index] != " "):
            char = line[index]
            if char == quote:
                quote = None
            elif char in "\"'" and quote is None:
                quote = char
            elif char == "\\":
                index, decoded = _unescape(line, index + 1)
                word.append(decoded)
                continue
            elif char == "%":
                following = line[index + 1 : index + 2]
                if following == "%":
                    word.append("%")
                    index += 1
                elif keep_specifiers:
                    word.append(char)
                else:
                    raise ValueError(f"systemd would expand specifier %{following} in {line!r}")
            elif char == "$":
                if line[index + 1 : index + 2] != "$":
                    raise ValueError(f"systemd would expand a variable in {line!r}")
                word.append("$")
                index += 1
            else:
                word.append(char)
            index += 1
        assert quote is None, f"unterminated quote in {line!r}"
        words.append("".join(word))
    return words


def _unescape(line: str, index: int) -> tuple[int, str]:
    char = line[index]
    if char in _ESCAPES:
        return index + 1, _ESCAPES[char]
    width = {"x": 2, "u": 4, "U": 8}.get(char)
    assert width is not None, f"unknown escape \\{char} in {line!r}"
    return index + 1 + width, chr(int(line[index + 1 : index + 1 + width], 16))


def test_systemd_words_reads_systemd_quoting() -> None:
    assert systemd_words('/bin/a "b c" \'d e\' f\\x20g "h\\"i" %%j $$k') == [
        "/bin/a",
        "b c",
        "d e",
        "f g",
        'h"i',
        "%j",
        "$k",
    ]
    assert systemd_words("a %H", keep_specifiers=True) == ["a", "%H"]
    with pytest.raises(ValueError, match="specifier"):
        systemd_words("a %H")
    with pytest.raises(ValueError, match="variable"):
        systemd_words("a $HOME")


# nix/fetch-specs.sh: keeps the spec checkout on its branch (before the watcher, then on a timer).


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}


def commit(work: Path, path: str, text: str) -> str:
    (work / path).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", f"edit {path}")
    return git(work, "rev-parse", "HEAD")


def fetch_specs(url: Path | str, branch: str, checkout: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(FETCH_SPECS), str(url), branch, str(checkout)],
        env=GIT_ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def spec_remote(tmp_path: Path) -> Path:
    """A spec repository (a working tree, so tests can commit to it) on branch main."""
    remote = tmp_path / "remote"
    remote.mkdir()
    git(remote, "init", "-q", "-b", "main")
    (remote / "specs").mkdir()
    commit(remote, "specs/a.yaml", "kind: Repo\n")
    return remote


def test_fetch_specs_clones_then_fast_forwards(spec_remote: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "state" / "specs"
    first = fetch_specs(spec_remote, "main", checkout)
    assert (first.returncode, first.stderr) == (0, "")
    assert git(checkout, "rev-parse", "HEAD") == git(spec_remote, "rev-parse", "HEAD")
    assert git(checkout, "symbolic-ref", "--short", "HEAD") == "main"

    newer = commit(spec_remote, "specs/b.yaml", "kind: Profile\n")
    (checkout / ".reconciler").mkdir()  # mirrors and caches `reconciler` keeps there
    again = fetch_specs(spec_remote, "main", checkout)
    assert (again.returncode, again.stderr) == (0, "")
    assert git(checkout, "rev-parse", "HEAD") == newer
    assert (checkout / "specs/b.yaml").read_text() == "kind: Profile\n"


def test_fetch_specs_keeps_the_checkout_when_the_remote_is_down(
    spec_remote: Path, tmp_path: Path
) -> None:
    checkout = tmp_path / "specs"
    assert fetch_specs(spec_remote, "main", checkout).returncode == 0
    before = git(checkout, "rev-parse", "HEAD")
    gone = tmp_path / "gone.git"
    result = fetch_specs(gone, "main", checkout)
    assert result.returncode == 0
    assert f"warning: cannot fetch branch main of {gone}; keeping the checkout" in result.stderr
    assert git(checkout, "rev-parse", "HEAD") == before


def test_fetch_specs_fails_without_a_remote_or_a_checkout(tmp_path: Path) -> None:
    result = fetch_specs(tmp_path / "gone.git", "main", tmp_path / "specs")
    assert result.returncode == 1
    assert "error: cannot fetch branch main" in result.stderr
    assert "there is no checkout yet" in result.stderr


def test_fetch_specs_resumes_an_interrupted_first_fetch(spec_remote: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "specs"
    checkout.mkdir()
    git(checkout, "init", "-q")
    git(checkout, "remote", "add", "origin", str(spec_remote))
    (checkout / "specs").mkdir()
    (checkout / "specs/a.yaml").write_text("half written")
    result = fetch_specs(spec_remote, "main", checkout)
    assert (result.returncode, result.stderr) == (0, "")
    assert (checkout / "specs/a.yaml").read_text() == "kind: Repo\n"


def test_fetch_specs_will_not_overwrite_local_commits(spec_remote: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "specs"
    assert fetch_specs(spec_remote, "main", checkout).returncode == 0
    local = commit(checkout, "specs/local.yaml", "kind: Branch\n")
    commit(spec_remote, "specs/b.yaml", "kind: Profile\n")
    result = fetch_specs(spec_remote, "main", checkout)
    assert result.returncode == 1
    assert f"error: {checkout} cannot fast-forward main to origin/main" in result.stderr
    assert git(checkout, "rev-parse", "HEAD") == local


def test_fetch_specs_follows_a_new_branch(spec_remote: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "specs"
    assert fetch_specs(spec_remote, "main", checkout).returncode == 0
    git(spec_remote, "checkout", "-q", "-b", "staging")
    staging = commit(spec_remote, "specs/s.yaml", "kind: Baseline\n")
    result = fetch_specs(spec_remote, "staging", checkout)
    assert (result.returncode, result.stderr) == (0, "")
    assert git(checkout, "symbolic-ref", "--short", "HEAD") == "staging"
    assert git(checkout, "rev-parse", "HEAD") == staging


def test_fetch_specs_leaves_a_foreign_directory_alone(spec_remote: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "specs"
    checkout.mkdir()
    (checkout / "notes.txt").write_text("mine")
    result = fetch_specs(spec_remote, "main", checkout)
    assert result.returncode == 1
    assert "is not empty and not a git checkout" in result.stderr
    assert sorted(p.name for p in checkout.iterdir()) == ["notes.txt"]


# PyPI names whose nixpkgs attribute differs (beyond case and `.` -> `-`).
NIXPKGS_NAMES = {"tap.py": "tappy"}


def test_the_nix_package_depends_on_exactly_the_runtime_dependencies() -> None:
    """nix/python-deps.nix lists pyproject.toml's [project] dependencies; a drift (a dependency
    added on one side only) would ship a package that fails at import, or carries dead weight."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set()
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        wanted.add(NIXPKGS_NAMES.get(name, name.lower().replace(".", "-")))
    text = (ROOT / "nix" / "python-deps.nix").read_text()
    body = text[text.index("with ps; [") + len("with ps; [") : text.rindex("]")]
    listed = {line.split("#")[0].strip() for line in body.splitlines()} - {""}
    assert listed == wanted
