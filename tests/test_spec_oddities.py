"""Specs that passed `validate` and then crashed or hung later are refused by `validate`, at
FILE:LINE:COLUMN (issue 11, item 9): environment names a process cannot have, a slot count no
host has, and files that are not files (a FIFO, a link to /dev/zero, a huge file)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reconciler.adapters.spec_loader import MAX_SPEC_BYTES, load_specs
from reconciler.model.errors import SpecErrors


def errors(spec_dir: Path) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load_specs(spec_dir)
    return [str(error) for error in caught.value.errors]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('build_env: {"A B": x}', "3:12", "'A B' is not an environment variable name"),
        ('build_env: {"A=B": x}', "3:12", "'A=B' is not an environment variable name"),
        ('runtime: {env: {"1X": x}}', "3:16", "'1X' is not an environment variable name"),
        ('runtime: {env: {X: "a\\0b"}}', "3:16", "the value of X holds a NUL byte"),
    ],
)
def test_environments_a_process_cannot_have_are_refused(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    (tmp_path / "p.yaml").write_text(f"kind: Profile\nname: p\n{text}\n")
    (line,) = errors(tmp_path)
    assert line.startswith(f"{tmp_path / 'p.yaml'}:{where}: ")
    assert message in line


def test_a_slot_count_no_host_has_is_refused(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(
        "kind: WorkerPool\nname: w\nhosts:\n  - {host: farm1, slots: 1000000000}\n"
    )
    (line,) = errors(tmp_path)
    assert line.startswith(f"{tmp_path / 'w.yaml'}:4:")
    assert "1024" in line


def test_a_fifo_named_yaml_is_refused_without_hanging(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("kind: Profile\nname: p\n")
    os.mkfifo(tmp_path / "fifo.yaml")
    started = time.monotonic()
    (line,) = errors(tmp_path)
    assert time.monotonic() - started < 10
    assert line.startswith(f"{tmp_path / 'fifo.yaml'}:1:1: spec file is not a regular file")


def test_a_link_to_dev_zero_is_refused(tmp_path: Path) -> None:
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    (line,) = errors(tmp_path)
    assert line.startswith(f"{tmp_path / 'zero.yaml'}:1:1: spec file is not a regular file")


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "huge.yaml").open("w") as huge:
        huge.write("# " + "x" * (MAX_SPEC_BYTES + 10) + "\n")
    (line,) = errors(tmp_path)
    assert line.startswith(f"{tmp_path / 'huge.yaml'}:1:1: spec file is larger than 4 MiB")
