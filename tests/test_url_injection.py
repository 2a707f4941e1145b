"""A repository URL can never run a command (issue 11, security 1).

`fetch_url: '--upload-pack=touch pwned;'` once passed `validate`, and `apply` ran it: the worker's
`git fetch` took the URL as an option. Now `validate` refuses every URL git or ssh would read as
an option or a command, at FILE:LINE:COLUMN, and the worker's git calls end option parsing
before the URL and allow only the spec transports, so even a URL that reached them unchecked
is only a repository that does not exist.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.worker_setup import HostWorkspace, PreparationError
from reconciler.model.errors import SpecErrors

HOSTILE = [
    "--upload-pack=touch {marker};",
    "-u touch {marker}",
    "ssh://-oProxyCommand=touch {marker}/x",
    "ssh://user@-oProxyCommand=touch {marker}/x",
    "-oProxyCommand=touch {marker}:x",
    "ext::sh -c touch% {marker}",
    "fd::17",
    "ftp://example.org/x.git",
    "https://example.org/x.git\ntouch {marker}",
]

SPEC = """\
kind: Repo
name: project
url: /srv/git/project.git
fetch_url: {fetch_url}
---
kind: Harness
name: ktest
type: ktest
url: {harness_url}
ref: master
dependencies:
  - {{name: xfstests, url: {dependency_url}, ref: master}}
"""


def _yaml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.mark.parametrize("url", HOSTILE)
def test_validate_refuses_a_hostile_url_in_every_url_field(tmp_path: Path, url: str) -> None:
    marker = tmp_path / "pwned"
    hostile = _yaml_string(url.format(marker=marker))
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "farm.yaml").write_text(
        SPEC.format(fetch_url=hostile, harness_url=hostile, dependency_url=hostile)
    )
    with pytest.raises(SpecErrors) as caught:
        load_specs(specs)
    located = [str(error).split(": ", 1)[0] for error in caught.value.errors]
    # Each of the three fields, at its own line and column.
    assert located == [
        f"{specs / 'farm.yaml'}:4:12",
        f"{specs / 'farm.yaml'}:9:6",
        f"{specs / 'farm.yaml'}:12:27",
    ]
    assert not marker.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://evilpiepirate.org/git/ktest.git",
        "git://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
        "ssh://ci@farm1.example.org:2222/srv/git/linux.git",
        "ci@farm1.example.org:linux.git",
        "file:///srv/git/linux.git",
        "/srv/git/linux.git",
        "../repo",
    ],
)
def test_ordinary_urls_pass(tmp_path: Path, url: str) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "repo.yaml").write_text(f"kind: Repo\nname: project\nurl: {_yaml_string(url)}\n")
    assert "project" in load_specs(specs).repos


@pytest.mark.parametrize("url", [u for u in HOSTILE if "\n" not in u])
def test_a_hostile_url_that_reached_a_worker_runs_nothing(tmp_path: Path, url: str) -> None:
    """Defence in depth: the worker's fetch, given such a URL anyway, runs no command."""
    marker = tmp_path / "pwned"
    with ResultStore(tmp_path / "store") as store:
        workspace = HostWorkspace(
            host=LocalHost(workdir=tmp_path / "work", slots=1), store=store, clock=time.time
        )
        with pytest.raises(PreparationError, match="fetching 0123456789ab failed"):
            asyncio.run(workspace.cache(url.format(marker=marker), "0123456789ab" * 3 + "0123"))
    assert not marker.exists()
