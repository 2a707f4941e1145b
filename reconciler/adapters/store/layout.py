"""Where things live in a store directory, and how records and logs are encoded there.

Shared by the file store (which writes) and the index (which rebuilds and verifies from the
files), so neither has to import the other. The layout is part of the store's public contract:
stores are pushed and pulled with git between hosts, so paths and encodings must not drift.

    results/<first 2 hex>/<id>.json   one ResultRecord, pretty JSON with sorted keys
    builds/<id>.json                  one BuildRecord
    logs/<first 2 hex>/<sha256>.br    brotli; the sha256 is of the uncompressed bytes, so a
                                      log's address does not depend on compression settings
    index.sqlite                      derived, rebuildable (`reconciler store reindex`)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import brotli
from pydantic import BaseModel, ValidationError

from reconciler.adapters.store.atomic import is_temp_name
from reconciler.model.errors import StoreError, UserError

RESULTS_DIR = "results"
BUILDS_DIR = "builds"
LOGS_DIR = "logs"
INDEX_FILE = "index.sqlite"
RECORD_SUFFIX = ".json"
LOG_SUFFIX = ".br"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")

RecordT = TypeVar("RecordT", bound=BaseModel)


def check_hex_id(value: str, *, what: str) -> str:
    """Refuse anything but a full lowercase sha256: ids become paths, so this also stops
    `../` from ever reaching the filesystem."""
    if not _HEX64.fullmatch(value):
        raise UserError(
            f"not a {what} identity: {value!r}",
            hint="identities are 64 lowercase hex characters (sha256)",
        )
    return value


def encode_record(record: BaseModel) -> bytes:
    """Deterministic, diff-friendly JSON: the same record always gives the same bytes."""
    text = json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True)
    return (text + "\n").encode()


def decode_record(model: type[RecordT], data: bytes) -> RecordT:
    return model.model_validate_json(data)


class CorruptRecord(Exception):
    """A record file that cannot be decoded; carries the path for `verify` and for errors."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def load_record(model: type[RecordT], path: Path) -> RecordT:
    """Decode one record file; `CorruptRecord` if it is not valid JSON of that model."""
    return parse_record(model, path, path.read_bytes())


def parse_record(model: type[RecordT], path: Path, data: bytes) -> RecordT:
    """Decode the bytes read from `path`; `CorruptRecord` if they are not a valid record."""
    try:
        return decode_record(model, data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(record)"
        raise CorruptRecord(path, f"does not parse: {location}: {first['msg']}") from exc


def corrupt_record_error(exc: CorruptRecord) -> StoreError:
    return StoreError(
        f"corrupt record: {exc.reason}",
        where=str(exc.path),
        hint="run `reconciler store verify`; restore the file from git or delete it",
    )


def store_read_error(path: Path, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot read the store: {exc.strerror or exc.__class__.__name__}",
        where=str(path),
        hint="check that the store path is a readable directory",
    )


def compress_log(data: bytes) -> bytes:
    # Quality 9 compresses build and test logs to within a few percent of 11 at ~10x the speed;
    # the address is of the uncompressed bytes, so this can change without moving any log.
    return bytes(brotli.compress(data, mode=brotli.MODE_TEXT, quality=9))


def decode_log(path: Path, expected: str) -> bytes:
    """The uncompressed log at `path`, checked against its address; StoreError if it is not."""
    try:
        compressed = path.read_bytes()
    except FileNotFoundError as exc:
        raise StoreError(
            "log is not in the store",
            where=str(path),
            hint="the log was never written or was deleted; run `reconciler store verify`",
        ) from exc
    except OSError as exc:
        raise store_read_error(path, exc) from exc
    try:
        data = bytes(brotli.decompress(compressed))
    except brotli.error as exc:
        raise StoreError(
            "corrupt log: not valid brotli data",
            where=str(path),
            hint="restore the file from git or delete it; run `reconciler store verify`",
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise StoreError(
            f"corrupt log: content hash is {actual}",
            where=str(path),
            hint="restore the file from git or delete it; run `reconciler store verify`",
        )
    return data


class StoreLayout:
    """Paths of one store root. Pure path arithmetic and read-only walks: creates nothing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def results_dir(self) -> Path:
        return self.root / RESULTS_DIR

    @property
    def builds_dir(self) -> Path:
        return self.root / BUILDS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    def result_path(self, result_id: str) -> Path:
        check_hex_id(result_id, what="result")
        return self.results_dir / result_id[:2] / f"{result_id}{RECORD_SUFFIX}"

    def build_path(self, build_id: str) -> Path:
        check_hex_id(build_id, what="build")
        return self.builds_dir / f"{build_id}{RECORD_SUFFIX}"

    def log_path(self, log_hash: str) -> Path:
        check_hex_id(log_hash, what="log")
        return self.logs_dir / log_hash[:2] / f"{log_hash}{LOG_SUFFIX}"

    def iter_result_files(self) -> Iterator[Path]:
        """Every result file, in id order (shards sorted, then names within a shard).

        Id order lets `verify` merge-join the files with the index without holding either in
        memory; only one shard's names (~1/256 of the store) are held at a time.
        """
        for shard in _sorted_entries(self.results_dir, directories=True):
            yield from _sorted_entries(shard, directories=False)

    def iter_build_files(self) -> Iterator[Path]:
        yield from _sorted_entries(self.builds_dir, directories=False)


def _sorted_entries(directory: Path, *, directories: bool) -> Iterator[Path]:
    try:
        with os.scandir(directory) as entries:
            names = sorted(
                entry.name
                for entry in entries
                if not is_temp_name(entry.name) and entry.is_dir() == directories
            )
    except FileNotFoundError:
        return
    except OSError as exc:
        raise store_read_error(directory, exc) from exc
    yield from (directory / name for name in names)


def id_from_record_path(path: Path) -> str | None:
    """The id a record file's name claims, or None if the name is not `<64 hex>.json`."""
    name = path.name
    if not name.endswith(RECORD_SUFFIX):
        return None
    stem = name[: -len(RECORD_SUFFIX)]
    return stem if _HEX64.fullmatch(stem) else None


def is_shard_name(name: str) -> bool:
    return _SHARD.fullmatch(name) is not None
