"""The result store: content-addressed record files, the source of truth, plus their index.

Records are plain JSON files keyed by identity so a store can be a git repository that hosts push
and pull to share results. Every write is atomic and idempotent (an identical put changes nothing,
not even an mtime), and a put for an identity that is already stored merges by "first verdict
stands" (see `merge`). Files are written first and the SQLite index second: the index is derived,
may lag after a crash, and `reindex` rebuilds it from the files.

Constructing a `ResultStore` creates nothing; directories appear on the first write and the
index is opened (or built) on first use. One writer per store at a time: the reconcile loop holds
the store lock, so read-merge-write of one record needs no file locking of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from reconciler.adapters.closing import Closing
from reconciler.adapters.store.atomic import write_atomic, write_many_atomic
from reconciler.adapters.store.index import StoreIndex
from reconciler.adapters.store.layout import (
    CorruptRecord,
    StoreLayout,
    check_hex_id,
    compress_log,
    corrupt_record_error,
    decode_log,
    encode_record,
    load_record,
    parse_record,
    store_read_error,
)
from reconciler.adapters.store.merge import check_identity, merge_build, merge_result
from reconciler.adapters.store.queries import StoredResult
from reconciler.model.results import BuildRecord, ResultRecord

RecordT = TypeVar("RecordT", bound=BaseModel)

# Records per index transaction in `put_results`: large enough that commits are not the cost,
# small enough that a crash loses little index work (the files are already safe).
INDEX_BATCH = 5_000
# Records per bulk write: one filesystem sync each, so larger is cheaper, bounded by memory
# (~1 KiB a record).
BULK_BATCH = 50_000


class ResultStore(Closing):
    """Results, builds and logs under one root directory (layout in `layout`)."""

    def __init__(self, root: Path, *, quick_check: bool = False) -> None:
        self.root = root
        self.layout = StoreLayout(root)
        self._quick_check = quick_check
        """Run SQLite's quick_check when opening the index: seconds on a multi-GB index, so only
        `store verify` asks for it; every open still checks the header and schema version."""
        self._index: StoreIndex | None = None

    @property
    def index(self) -> StoreIndex:
        """The SQLite index, opened on first use; a missing or corrupt one is rebuilt."""
        if self._index is None:
            self._index = StoreIndex.open(self.layout, quick_check=self._quick_check)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # Results and builds.

    def put_result(self, record: ResultRecord) -> ResultRecord:
        """Store `record` (merged with any stored record of its id); returns what is stored."""
        stored = self._write_result(record)
        self.index.add_results([stored])
        return stored

    def put_results(self, records: Iterable[ResultRecord]) -> int:
        """`put_result` for many records (importers, bulk runs), in batches.

        New records of a batch are written together (`write_many_atomic`: one filesystem sync
        per batch instead of two fsyncs per record) and indexed in one transaction; a record
        that already exists goes through the usual merge ("first verdict stands").
        """
        count = 0
        batch: list[ResultRecord] = []
        for record in records:
            batch.append(record)
            count += 1
            if len(batch) >= BULK_BATCH:
                self._put_batch(batch)
                batch = []
        if batch:
            self._put_batch(batch)
        return count

    def _put_batch(self, records: list[ResultRecord]) -> None:
        fresh: dict[str, tuple[Path, bytes, ResultRecord]] = {}
        stored: list[ResultRecord] = []
        for record in records:
            check_identity(record)
            path = self.layout.result_path(record.id)
            if record.id in fresh or path.exists():
                stored.append(self._write_result(record))  # merge with what is there
            else:
                fresh[record.id] = (path, encode_record(record), record)
        write_many_atomic([(path, data) for path, data, _ in fresh.values()])
        self.index.add_results([record for _, _, record in fresh.values()] + stored)

    def put_build(self, record: BuildRecord) -> BuildRecord:
        """Store `record`; a stored pass/fail verdict is never replaced (see `merge_build`)."""
        check_identity(record)
        path = self.layout.build_path(record.id)
        raw, stored = self._read_existing(BuildRecord, path)
        merged = merge_build(stored, record)
        self._write_if_changed(path, raw, encode_record(merged))
        self.index.add_build(merged)
        return merged

    def get_result(self, result_id: str) -> ResultRecord | None:
        return self._read_existing(ResultRecord, self.layout.result_path(result_id))[1]

    def get_build(self, build_id: str) -> BuildRecord | None:
        return self._read_existing(BuildRecord, self.layout.build_path(build_id))[1]

    def repair_results(self, result_ids: Iterable[str]) -> int:
        """Bring the index rows of `result_ids` in line with their files; returns how many
        rows were added, changed or dropped.

        For the results of work a crashed run had leased: a kill between a record's write and
        its index update leaves the file (the truth) without its row, and the next plan would
        run that subtest again and append a duplicate attempt. A row whose file is missing is
        dropped, so that subtest runs again. Costs one file read per id, not a reindex.
        """
        present: list[ResultRecord] = []
        absent: list[str] = []
        for result_id in dict.fromkeys(result_ids):
            path = self.layout.result_path(result_id)
            record = self._read_existing(ResultRecord, path)[1]
            if record is None:
                absent.append(result_id)
            elif record.id != result_id:
                raise corrupt_record_error(CorruptRecord(path, f"holds record {record.id}"))
            else:
                present.append(record)
        if not present and not absent:
            return 0
        return self.index.sync_results(present, absent=absent)

    def results_for_build(self, build_id: str) -> list[StoredResult]:
        """The build's results as indexed (id, unit, test, subtest, status, duration), ordered
        by unit then subtest; read `get_result` for attempts and logs."""
        return self.index.results_for_build(check_hex_id(build_id, what="build"))

    def results_for_unit(self, unit_id: str) -> list[StoredResult]:
        """The unit's results as indexed, ordered by subtest."""
        return self.index.results_for_unit(check_hex_id(unit_id, what="unit"))

    def iter_results(self) -> Iterator[ResultRecord]:
        """Every stored result, in id order, one file at a time."""
        for path in self.layout.iter_result_files():
            yield self._load(ResultRecord, path)

    def iter_builds(self) -> Iterator[BuildRecord]:
        for path in self.layout.iter_build_files():
            yield self._load(BuildRecord, path)

    # Logs.

    def put_log(self, data: bytes) -> str:
        """Store a log; returns its address, the sha256 of the uncompressed bytes."""
        log_hash = hashlib.sha256(data).hexdigest()
        path = self.layout.log_path(log_hash)
        # Content-addressed: an existing file already holds these bytes (verify checks that).
        if not path.exists():
            write_atomic(path, compress_log(data))
        return log_hash

    def read_log(self, log_hash: str) -> bytes:
        """The uncompressed log, verified against its address (StoreError if missing/corrupt)."""
        return decode_log(self.layout.log_path(log_hash), log_hash)

    def has_log(self, log_hash: str) -> bool:
        return self.layout.log_path(log_hash).is_file()

    # Internals.

    def _write_result(self, record: ResultRecord) -> ResultRecord:
        check_identity(record)
        path = self.layout.result_path(record.id)
        raw, stored = self._read_existing(ResultRecord, path)
        merged = merge_result(stored, record)
        self._write_if_changed(path, raw, encode_record(merged))
        return merged

    @staticmethod
    def _write_if_changed(path: Path, raw: bytes | None, data: bytes) -> None:
        if data != raw:
            write_atomic(path, data)

    @staticmethod
    def _read_existing(model: type[RecordT], path: Path) -> tuple[bytes | None, RecordT | None]:
        """The raw bytes and decoded record at `path`, or (None, None) if there is none."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise store_read_error(path, exc) from exc
        try:
            return raw, parse_record(model, path, raw)
        except CorruptRecord as exc:
            # A corrupt record is never overwritten: it may be the only copy of a verdict.
            raise corrupt_record_error(exc) from exc

    @staticmethod
    def _load(model: type[RecordT], path: Path) -> RecordT:
        try:
            return load_record(model, path)
        except CorruptRecord as exc:
            raise corrupt_record_error(exc) from exc
        except OSError as exc:
            raise store_read_error(path, exc) from exc
