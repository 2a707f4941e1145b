"""Enumeration of the real ktest sample: what planning costs cold, warm, and against a hand loop.

On the farm of tests/ktest_sample.py (the 12 bcachefs `.ktest` files of shared/data's ktest
tree, with cross.conf, xfstests from shared/sources and two stand-in dependencies), in one run:

- baseline: a plain shell loop running each file's `list-tests` by hand, deps provisioned;
- cold: `Planner.desired` with an empty store cache (dependency exports, listings under xtrace,
  name checks, cache writes);
- warm: the same again in a fresh process state with the cache kept (only the ktest tree and
  its dependencies are resolved; no file is listed).

Each is the median of `--runs` runs; it prints seconds and ratios against the baseline and
asserts nothing. Usage: python bench/ktest_enumeration.py [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.adapters.git import GitResolver  # noqa: E402
from reconciler.adapters.harness.enumeration_cache import SqliteEnumerationCache  # noqa: E402
from reconciler.adapters.spec_loader import load_specs  # noqa: E402
from reconciler.app import planning  # noqa: E402
from reconciler.app.planning import Planner  # noqa: E402
from tests.ktest_sample import hand_listings, make_farm  # noqa: E402


def plan_once(specs: Path, store: Path, git_cache: Path) -> tuple[float, int, int]:
    planning._DECLARED.clear()  # a new process would not have it either
    started = time.perf_counter()
    with SqliteEnumerationCache(store / "cache" / "enumeration.sqlite") as cache:
        planner = Planner(
            git=GitResolver(git_cache), cache=cache, dependency_root=store / "cache" / "trees"
        )
        desired = planner.desired(load_specs(specs))
        hits, misses = cache.hits, cache.misses
    elapsed = time.perf_counter() - started
    assert desired.slots, "nothing planned"
    return elapsed, hits, misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ktest-bench-") as scratch:
        root = Path(scratch)
        farm = make_farm(root / "farm")
        specs = root / "specs"
        specs.mkdir()
        (specs / "farm.yaml").write_text(farm.spec_text(ref="with-cross-conf"))

        hand, cold, warm = [], [], []
        for run in range(args.runs):
            started = time.perf_counter()
            listed = hand_listings(farm, ref="with-cross-conf", workdir=root / f"hand{run}")
            hand.append(time.perf_counter() - started)
            store = root / f"store{run}"
            seconds, _, misses = plan_once(specs, store, root / f"git{run}")
            cold.append(seconds)
            seconds, hits, again = plan_once(specs, store, root / f"git{run}")
            warm.append(seconds)
            shutil.rmtree(store)
        subtests = sum(len(listing.lines) for listing in listed.values() if listing.valid)
        base = statistics.median(hand)
        print(f"ktest sample: {len(listed)} test files, {subtests} subtests listed by hand")
        print(f"  cold plan: {misses} listings; warm plan: {hits} cache hits, {again} listings")
        for label, values in (("by hand (shell loop)", hand), ("cold", cold), ("warm", warm)):
            median = statistics.median(values)
            print(
                f"  {label:<22} median {median:6.2f} s  (min {min(values):.2f}, max"
                f" {max(values):.2f})  {median / base:5.2f}x the hand loop"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
