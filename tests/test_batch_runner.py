"""The batch runner on a real local host: what it stores when a worker's output is broken."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from reconciler.adapters.executors.local import LocalHost
from reconciler.adapters.git import GitResolver
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.harness.registry import adapter_for
from reconciler.adapters.spec_loader import load_specs
from reconciler.adapters.store.files import ResultStore
from reconciler.app.batch_runner import BatchRunner
from reconciler.app.planning import Planner
from reconciler.app.work import batches_for
from reconciler.app.worker_setup import HostWorkspace, PreparationError

from .test_apply_local import make_farm

TRUNCATED_JUNIT = """\
#!/bin/sh
if [ "$1" = --list ]; then echo a; echo b; exit 0; fi
printf '<testsuite><testcase name="a"/><testcase name="b"><failure>boom' > "$2/junit.xml"
"""


def test_unreadable_result_files_are_an_infrastructure_failure_not_a_verdict(
    tmp_path: Path,
) -> None:
    farm = make_farm(tmp_path / "farm", scripts={"j.t": TRUNCATED_JUNIT})
    specs_file = farm / "specs/farm.yaml"
    specs_file.write_text(
        specs_file.read_text().replace(
            "run: sh {test} {subtests}", "run: sh {test} {output_dir}\noutput: junit"
        )
    )
    specs = load_specs(farm / "specs")
    cache = MemoryEnumerationCache()
    planner = Planner(git=GitResolver(tmp_path / "git"), cache=cache)
    with ResultStore(tmp_path / "store") as store:
        desired = planner.desired(specs)
        plan = planner.plan(desired, store.index.snapshot(desired))
        (batch,) = batches_for(
            plan=plan, desired=desired, resolution=planner.resolution, specs=specs, store=store
        )
        host = LocalHost(workdir=tmp_path / "work", slots=1)
        runner = BatchRunner(
            workspace=HostWorkspace(host=host, store=store, clock=time.time),
            store=store,
            adapters={n: adapter_for(h, cache=cache) for n, h in specs.harnesses.items()},
        )
        with pytest.raises(PreparationError, match=r"unreadable results of tests/j\.t"):
            asyncio.run(runner.run(batch))
        assert list(store.iter_results()) == []
