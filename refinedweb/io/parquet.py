"""Parquet shard writing: buffered row groups, zstd, atomic commit, deterministic names."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .storage import LocalStorage

DOCUMENT_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("url", pa.string()),
    ("text", pa.string()),
    ("source", pa.string()),
    ("date", pa.string()),
    ("language", pa.string()),
    ("language_score", pa.float32()),
    ("token_count", pa.int32()),
])

DROPPED_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("url", pa.string()),
    ("source", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("text", pa.string()),
])


class ShardWriter:
    """Writes rows to `<prefix>-00000.parquet`, `<prefix>-00001.parquet`, … under `folder`.

    Rows are buffered and written as row groups of `row_group_rows`; a shard is closed and committed
    when it reaches `max_rows_per_shard`. Nothing is visible under a final name before `close()` (or a
    rotation) commits it.
    """

    def __init__(self, storage: LocalStorage, folder: str, prefix: str, schema: pa.Schema, *,
                 compression: str = "zstd", compression_level: int | None = 3,
                 max_rows_per_shard: int = 100_000, row_group_rows: int = 5_000):
        self.storage = storage
        self.folder = folder.strip("/")
        self.prefix = prefix
        self.schema = schema
        self.compression = compression
        self.compression_level = compression_level
        self.max_rows = max(1, max_rows_per_shard)
        self.row_group_rows = max(1, min(row_group_rows, self.max_rows))
        self.buffer: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.buffered = 0
        self.rows_in_shard = 0
        self.sequence = 0
        self.committed: list[str] = []
        self.rows_total = 0
        self._writer: pq.ParquetWriter | None = None
        self._tmp: str | None = None

    def _relpath(self, sequence: int) -> str:
        name = f"{self.prefix}-{sequence:05d}.parquet"
        return f"{self.folder}/{name}" if self.folder else name

    def add(self, row: dict[str, Any]) -> None:
        for name in self.schema.names:
            self.buffer[name].append(row.get(name))
        self.buffered += 1
        if self.buffered >= self.row_group_rows or self.rows_in_shard + self.buffered >= self.max_rows:
            self._flush()

    def add_table(self, table: pa.Table) -> None:
        """Add a whole Arrow table (columns of `schema`), without going through Python rows."""
        self._flush()
        self._write(table.select(self.schema.names).cast(self.schema))

    def _flush(self) -> None:
        if not self.buffered:
            return
        table = pa.Table.from_pydict(self.buffer, schema=self.schema)
        self.buffer = {name: [] for name in self.schema.names}
        self.buffered = 0
        self._write(table)

    def _write(self, table: pa.Table) -> None:
        """Append to the open shard, committing it and opening the next whenever it is full."""
        offset = 0
        while offset < table.num_rows:
            piece = table.slice(offset, self.max_rows - self.rows_in_shard)
            if self._writer is None:
                self._tmp = self.storage.temp_path(self._relpath(self.sequence))
                self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=self.compression,
                                                compression_level=self.compression_level)
            self._writer.write_table(piece, row_group_size=self.row_group_rows)
            self.rows_in_shard += piece.num_rows
            self.rows_total += piece.num_rows
            offset += piece.num_rows
            if self.rows_in_shard >= self.max_rows:
                self._commit()

    def _commit(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        relpath = self._relpath(self.sequence)
        self.storage.commit(self._tmp, relpath)
        self.committed.append(relpath)
        self._writer = None
        self._tmp = None
        self.rows_in_shard = 0
        self.sequence += 1

    def close(self) -> list[str]:
        """Commit what is buffered, and delete shards of an earlier run beyond the ones written now."""
        self._flush()
        self._commit()
        # A shorter re-run (e.g. a changed config) must not leave the old run's higher-numbered shards.
        sequence = self.sequence
        while self.storage.exists(self._relpath(sequence)):
            self.storage.delete(self._relpath(sequence))
            sequence += 1
        return self.committed

    def abort(self) -> None:
        """Give up: the open shard is discarded and the shards already committed are deleted, so a
        file that fails contributes nothing (its re-run writes them again)."""
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self.storage.discard(self._tmp)
                self._writer = None
        for relpath in self.committed:
            self.storage.delete(relpath)
        self.committed = []
