"""Parquet shard writing: sized shards and row groups, zstd, atomic commit, deterministic names, manifest entries."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .cache import sha256_file
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
    ("detail", pa.string()),       # what the stage matched, when it says (decontaminate: benchmark and n-gram)
])


NO_STATISTICS = {"text", "url", "id", "source"}   # long free-form strings


@dataclass(frozen=True)
class ShardLimits:
    """When a shard is full (whichever comes first) and how big its row groups are (`output.*`)."""

    max_bytes: int | None = 1 << 30          # compressed file size
    max_tokens: int | None = None
    max_rows: int | None = None
    row_group_bytes: int = 64 << 20          # uncompressed; large row groups scan fast
    row_group_rows: int = 100_000
    compression: str = "zstd"
    compression_level: int | None = 3

    @classmethod
    def from_config(cls, out: dict[str, Any], **override) -> "ShardLimits":
        def opt(key):
            value = override.get(key, out.get(key))
            return int(value) if value else None

        return cls(max_bytes=opt("shard_max_bytes"), max_tokens=opt("shard_max_tokens"),
                   max_rows=opt("shard_max_rows"), row_group_bytes=int(out.get("row_group_bytes") or 64 << 20),
                   compression=out.get("compression", "zstd"), compression_level=out.get("compression_level"))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with exactly the schema's columns: missing ones as nulls, types cast."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


class ShardWriter:
    """Writes rows to `<prefix>-00000.parquet`, `<prefix>-00001.parquet`, … under `folder`.

    Rows are buffered into row groups of about `row_group_bytes` (uncompressed); a shard is committed and
    the next one started before a row group would take it past `max_bytes` (compressed size, estimated
    from the ratio achieved so far), `max_tokens` or `max_rows`. Nothing is visible under a final name
    before it is committed; each commit yields a manifest entry (path, rows, tokens, bytes, sha256,
    per-language counts).
    """

    def __init__(self, storage: LocalStorage, folder: str, prefix: str, schema: pa.Schema,
                 limits: ShardLimits | None = None):
        self.storage = storage
        self.folder = folder.strip("/")
        self.prefix = prefix
        self.schema = schema
        self.limits = limits = limits or ShardLimits()
        group_bytes = limits.row_group_bytes
        if limits.max_bytes:
            group_bytes = min(group_bytes, max(1, limits.max_bytes // 2))   # several row groups per shard
        self.row_group_bytes = group_bytes
        self.row_group_rows = min(limits.row_group_rows, limits.max_rows or limits.row_group_rows)
        self.buffer: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.buffered = 0
        self.buffered_bytes = 0
        self.sequence = 0
        self.committed: list[dict[str, Any]] = []
        self.rows_total = 0
        self._writer: pq.ParquetWriter | None = None
        self._sink = None
        self._tmp: str | None = None
        self._relpath_override: str | None = None
        self._reset_shard()

    def _reset_shard(self) -> None:
        self._writer_row_groups = 0
        self.rows_in_shard = 0
        self.tokens_in_shard = 0
        self.raw_bytes_in_shard = 0
        self.languages: dict[str, list[int]] = {}
        self.corpora: dict[str, list[int]] = {}

    def _relpath(self, sequence: int) -> str:
        if self._relpath_override:
            return self._relpath_override
        name = f"{self.prefix}-{sequence:05d}.parquet"
        return f"{self.folder}/{name}" if self.folder else name

    def add(self, row: dict[str, Any]) -> None:
        for name in self.schema.names:
            self.buffer[name].append(row.get(name))
        self.buffered += 1
        text = row.get("text")
        self.buffered_bytes += len(text) if isinstance(text, str) else 64
        if self.buffered >= self.row_group_rows or self.buffered_bytes >= self.row_group_bytes:
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
        self.buffered_bytes = 0
        self._write(table)

    def _row_groups(self, table: pa.Table):
        """Slices of at most row_group_rows rows and about row_group_bytes uncompressed bytes."""
        if table.num_rows == 0:
            return
        sizes = _row_bytes(table)
        ends = np.cumsum(sizes)
        start = 0
        while start < table.num_rows:
            base = ends[start - 1] if start else 0
            stop = int(np.searchsorted(ends, base + self.row_group_bytes, side="right"))
            stop = max(start + 1, min(stop, start + self.row_group_rows, table.num_rows))
            yield table.slice(start, stop - start), int(ends[stop - 1] - base)
            start = stop

    def _write(self, table: pa.Table) -> None:
        limits = self.limits
        for piece, raw_bytes in self._row_groups(table):
            tokens = _sum(piece, "token_count")
            if self._writer is not None and self._would_overflow(piece.num_rows, raw_bytes, tokens):
                self._commit()
            if self._writer is None:
                self._tmp = self.storage.temp_path(self._relpath(self.sequence))
                self._sink = pa.OSFile(self._tmp, "wb")
                self._writer = pq.ParquetWriter(self._sink, self.schema, compression=limits.compression,
                                                compression_level=limits.compression_level,
                                                write_statistics=self._statistics_columns())
            self._writer.write_table(piece, row_group_size=piece.num_rows)
            self._writer_row_groups += 1
            self.rows_in_shard += piece.num_rows
            self.rows_total += piece.num_rows
            self.tokens_in_shard += tokens
            self.raw_bytes_in_shard += raw_bytes
            _count_by(piece, "language", self.languages)
            _count_by(piece, "corpus", self.corpora)
            if self._full():
                self._commit()

    def _statistics_columns(self) -> list[str]:
        """Min/max statistics help scans on short columns (language, scores, counts); on free text they
        only bloat the footer."""
        return [name for name in self.schema.names if name not in NO_STATISTICS]

    def _would_overflow(self, rows: int, raw_bytes: int, tokens: int) -> bool:
        limits = self.limits
        if limits.max_rows and self.rows_in_shard + rows > limits.max_rows:
            return True
        if limits.max_tokens and self.tokens_in_shard + tokens > limits.max_tokens:
            return True
        if limits.max_bytes:
            written = self._sink.tell()
            ratio = written / self.raw_bytes_in_shard if self.raw_bytes_in_shard else 0.5
            footer = 1024 * (self._writer_row_groups + 1)       # metadata written at close
            return written + raw_bytes * ratio + footer > limits.max_bytes
        return False

    def _full(self) -> bool:
        limits = self.limits
        return bool((limits.max_rows and self.rows_in_shard >= limits.max_rows)
                    or (limits.max_tokens and self.tokens_in_shard >= limits.max_tokens)
                    or (limits.max_bytes and self._sink.tell() >= limits.max_bytes))

    def _commit(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._sink.close()
        relpath = self._relpath(self.sequence)
        entry = {"path": relpath, "rows": self.rows_in_shard, "tokens": self.tokens_in_shard,
                 "bytes": os.path.getsize(self._tmp), "sha256": sha256_file(self._tmp)}
        if self.languages:
            entry["languages"] = {k: {"rows": v[0], "tokens": v[1]} for k, v in sorted(self.languages.items())}
        if self.corpora:
            entry["corpora"] = {k: {"rows": v[0], "tokens": v[1]} for k, v in sorted(self.corpora.items())}
        self.storage.commit(self._tmp, relpath)
        self.committed.append(entry)
        self._writer = self._sink = self._tmp = None
        self._reset_shard()
        self.sequence += 1

    def close(self) -> list[dict[str, Any]]:
        """Commit what is buffered, and delete shards of an earlier run beyond the ones written now.
        Returns the manifest entries of the shards written."""
        self._flush()
        self._commit()
        # A shorter re-run (e.g. a changed config) must not leave the old run's higher-numbered shards.
        sequence = self.sequence
        while self.storage.exists(self._relpath(sequence)):
            self.storage.delete(self._relpath(sequence))
            sequence += 1
        return self.committed

    def fill(self) -> float:
        """How full the open shard is, against the tightest limit (0 when none is open)."""
        if self._writer is None:
            return 0.0
        limits = self.limits
        ratios = [0.0]
        if limits.max_bytes:
            ratios.append(self._sink.tell() / limits.max_bytes)
        if limits.max_tokens:
            ratios.append(self.tokens_in_shard / limits.max_tokens)
        if limits.max_rows:
            ratios.append(self.rows_in_shard / limits.max_rows)
        return max(ratios)

    def close_with_tail(self, tail_relpath: str, min_fill: float = 0.5) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Like `close`, but a last shard filled less than `min_fill` is committed at `tail_relpath`
        instead (for merging with other tails into full shards). Returns (shards, tail or None)."""
        self._flush()
        tail = None
        if self._writer is not None and self.fill() < min_fill:
            sequence, self._relpath_override = self.sequence, tail_relpath
            self._commit()
            tail = self.committed.pop()
            self.sequence = sequence
            self._relpath_override = None
        return self.close(), tail

    def abort(self) -> None:
        """Give up: the open shard is discarded and the shards already committed are deleted, so a
        file that fails contributes nothing (its re-run writes them again)."""
        if self._writer is not None:
            try:
                self._writer.close()
                self._sink.close()
            finally:
                self.storage.discard(self._tmp)
                self._writer = self._sink = None
        for entry in self.committed:
            self.storage.delete(entry["path"])
        self.committed = []


def _row_bytes(table: pa.Table) -> np.ndarray:
    """Uncompressed bytes per row: the text column's length plus an even share of the other columns."""
    other = table.nbytes
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    if "text" in table.column_names:
        lengths = pc.binary_length(table.column("text")).to_numpy(zero_copy_only=False)
        sizes += np.nan_to_num(lengths.astype(np.float64)).astype(np.int64)
        other -= int(sizes.sum())
    sizes += max(0, other) // max(1, table.num_rows)
    return sizes


def _sum(table: pa.Table, column: str) -> int:
    if column not in table.column_names or table.num_rows == 0:
        return 0
    return int(pc.sum(table.column(column)).as_py() or 0)


def _count_by(table: pa.Table, column: str, into: dict[str, list[int]]) -> None:
    """Rows and tokens per value of a short column (language, corpus), for the manifest."""
    if column not in table.column_names or table.num_rows == 0:
        return
    values = table.column(column).to_pylist()
    tokens = table.column("token_count").to_pylist() if "token_count" in table.column_names else [0] * len(values)
    for value, n in zip(values, tokens):
        slot = into.setdefault(value or "unknown", [0, 0])
        slot[0] += 1
        slot[1] += n or 0
