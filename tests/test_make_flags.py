"""`make_flags` cannot change what make builds or run anything (issue 11, security 3).

`X=$(shell touch …)` ran on a worker; a first word without `-` was read by make as option
letters, so make ran with `-t`, compiled nothing, and the build was recorded as a pass. Flags are
now an allow-list checked by `validate`, reach make as a well-formed MAKEFLAGS (options, then
` -- ` and the definitions), and a build that exits 0 having made nothing is a failed build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import brotli
import pytest

from reconciler.adapters.spec_loader import load_specs
from reconciler.model.errors import SpecErrors
from reconciler.model.make_flags import makeflags_value
from tests.test_apply_local import make_farm

REFUSED = [
    ["t"],
    ["-t"],
    ["-n"],
    ["--touch"],
    ["-f", "evil.mk"],
    ["-C/"],
    ["--eval=all:;@touch pwned"],
    ["X=$(shell touch pwned)"],
    ["X=`touch pwned`"],
    ["X=a\\"],
    ["SHELL=/tmp/evil"],
    ["MAKEFLAGS=-t"],
    ["two words"],
]


@pytest.mark.parametrize("flags", REFUSED, ids=[" ".join(f) for f in REFUSED])
def test_validate_refuses_flags_that_change_what_make_does(
    tmp_path: Path, flags: list[str]
) -> None:
    (tmp_path / "profile.yaml").write_text(
        f"kind: Profile\nname: p\nmake_flags: {json.dumps(flags)}\n"
    )
    with pytest.raises(SpecErrors) as caught:
        load_specs(tmp_path)
    assert str(caught.value.errors[0]).startswith(f"{tmp_path / 'profile.yaml'}:3:")


def test_ordinary_flags_pass(tmp_path: Path) -> None:
    flags = ["-j8", "--jobs=4", "-l2.5", "-k", "-s", "-Oline", "V=1", "KCFLAGS=-O2 -g", "W=1"]
    (tmp_path / "profile.yaml").write_text(
        f"kind: Profile\nname: p\nmake_flags: {json.dumps(flags)}\n"
    )
    assert load_specs(tmp_path).profiles["p"].make_flags == flags


def test_makeflags_reach_a_real_make_as_options_then_definitions(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n\t@echo 'V=$(V) K=$(KCFLAGS)' > out\n")
    value = makeflags_value(["V=1", "-s", "KCFLAGS=-O2 -g"])
    assert value == "-s -- V=1 KCFLAGS=-O2\\ -g"
    env = {"PATH": os.environ["PATH"], "MAKEFLAGS": value}
    done = subprocess.run(["make"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (tmp_path / "out").read_text() == "V=1 K=-O2 -g\n"


def test_a_build_that_makes_nothing_is_a_failed_build(tmp_path: Path) -> None:
    script = "echo 1..1\necho ok 1 - t\n"
    farm = make_farm(tmp_path, scripts={"a.t": script}, build="true")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--specs", str(farm / "specs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    builds = [json.loads(p.read_text()) for p in (farm / ".reconciler/store/builds").iterdir()]
    assert [b["status"] for b in builds] == ["fail"]
    log = farm / ".reconciler/store/logs" / builds[0]["log"][:2] / f"{builds[0]['log']}.br"
    assert b"the build exited 0 but produced no file" in brotli.decompress(log.read_bytes())
    planned = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--specs", str(farm / "specs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "blocked by 1 failed builds" in planned.stdout
