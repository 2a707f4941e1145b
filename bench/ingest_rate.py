"""Ingest rate: results per second into the store's files and index.

Writes N synthetic results (shaped like an fstests import: one unit per test, realistic
preimages and attempts) into a fresh store two ways, in the same run:

- `put_results` (the bulk path importers and bulk runs use: one sync per batch of 5,000);
- the baseline, `put_result` one record at a time (two fsyncs per record, as a run writes a
  subtest the moment it is reported), on a smaller sample, reported per second.

Target: >= 50,000 results/s into files + index. It prints what it measured; it asserts nothing.

Usage: python bench/ingest_rate.py [--results 50000] [--baseline 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.adapters.store.files import ResultStore  # noqa: E402
from reconciler.core.identity import ResultIdentities, result_preimage, sha256_hex  # noqa: E402
from reconciler.model.results import Attempt, ResultRecord, Status  # noqa: E402

STATUSES = (Status.PASS,) * 8 + (Status.SKIP, Status.FAIL)


def records(count: int, *, offset: int = 0) -> list[ResultRecord]:
    build = sha256_hex(f"build {offset}")
    made = []
    for n in range(offset, offset + count):
        test = f"generic/{n:06d}"
        fields = {
            "v": 1,
            "build": build,
            "runtime": {"fstype": "xfs", "section": "xfs_crc"},
            "harness": {"type": "fstests", "revision": "f" * 40},
            "test": test,
            "timeout": 600,
        }
        status = STATUSES[n % len(STATUSES)]
        made.append(
            ResultRecord(
                id=ResultIdentities(fields).of(test),
                unit=sha256_hex(f"unit {n}"),
                build=build,
                test=test,
                subtest=test,
                preimage=result_preimage(fields, test),
                status=status,
                duration=float(n % 300),
                attempts=[Attempt(status=status, duration=float(n % 300), worker="farm1")],
            )
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=50_000)
    parser.add_argument("--baseline", type=int, default=2_000)
    args = parser.parse_args()

    bulk_input = records(args.results)
    single_input = records(args.baseline, offset=args.results)
    with tempfile.TemporaryDirectory(prefix="ingest-", dir=ROOT) as scratch:
        with ResultStore(Path(scratch) / "bulk") as store:
            _ = store.index  # opening the index is not ingest
            started = time.perf_counter()
            store.put_results(bulk_input)
            bulk_seconds = time.perf_counter() - started
        with ResultStore(Path(scratch) / "single") as store:
            _ = store.index
            started = time.perf_counter()
            for record in single_input:
                store.put_result(record)
            single_seconds = time.perf_counter() - started

    bulk_rate = args.results / bulk_seconds
    single_rate = args.baseline / single_seconds
    print(
        f"bulk put_results:       {args.results:>7,} results in {bulk_seconds:6.2f} s = "
        f"{bulk_rate:>8,.0f} results/s  (target >= 50,000)"
    )
    print(
        f"one by one (baseline):  {args.baseline:>7,} results in {single_seconds:6.2f} s = "
        f"{single_rate:>8,.0f} results/s"
    )
    print(f"bulk vs one by one:     {bulk_rate / single_rate:.1f}x")


if __name__ == "__main__":
    main()
