"""The mix's units of work, pure functions of files (no Ray): scan one input file, write one output shard."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..io.parquet import ShardLimits, ShardWriter, conform
from ..io.random_access import open_parquet
from ..io.remote import FetchConfig
from ..io.storage import open_storage
from .plan import Chunk, Repeat, RowGroup

WORK = "_work/mix"
CORPUS = "corpus"
TOKENS = "token_count"


def counts_path(source: int, file_index: int) -> str:
    return f"{WORK}/tokens/s={source:03d}/f={file_index:06d}.npy"


def column_values(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64, null as NaN."""
    return pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def scan_file(source: int, file_index: int, uri: str, encoding: str, fetch: FetchConfig,
              output: str, repeat: Repeat | None = None) -> dict[str, Any]:
    """Row groups of one input file with their rows, tokens and bytes. Tokens come from `token_count`
    when the file has it (only that column is read); otherwise the text is tokenised once and the
    per-row counts are kept under _work/ for the writers. With `repeat`, the tokens of each copy of the row
    group and the documents and tokens of each bin (once) are counted too."""
    from ..errors import UserError

    parquet = open_parquet(uri, fetch)
    meta = parquet.metadata
    schema = parquet.schema_arrow
    if "text" not in schema.names:
        raise UserError(f"mix input {uri} has no 'text' column")
    if repeat is not None and repeat.column not in schema.names:
        raise UserError(f"mix input {uri} has no column '{repeat.column}' (repeat.column)")
    has_counts = TOKENS in schema.names
    extra = [repeat.column] if repeat is not None else []
    groups, per_row = [], []
    bins = np.zeros((2, len(repeat.maxes) + 1), dtype=np.int64) if repeat is not None else None
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        size = sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))
        if has_counts:
            table = parquet.read_row_group(g, columns=[TOKENS, *extra])
            counts = table.column(TOKENS).to_numpy(zero_copy_only=False)
        else:
            from ..stages.tokens import count_tokens

            table = parquet.read_row_group(g, columns=["text", *extra])
            counts = np.array([count_tokens(t or "", encoding) for t in table.column("text").to_pylist()], dtype=np.int32)
            per_row.append(counts)
        counts = np.nan_to_num(counts.astype(np.float64)).astype(np.int64)
        tokens = int(counts.sum())
        if repeat is None:
            groups.append(RowGroup(source, uri, g, rg.num_rows, tokens, size).__dict__)
            continue
        values = column_values(table, repeat.column)
        times, which = repeat.times_of(values), repeat.bins_of(values)
        levels = tuple(int(counts[times > r].sum()) for r in range(repeat.levels))
        bins[0] += np.bincount(which, minlength=bins.shape[1])
        bins[1] += np.bincount(which, weights=counts, minlength=bins.shape[1]).astype(np.int64)
        groups.append(RowGroup(source, uri, g, rg.num_rows, sum(levels), size, levels, tokens).__dict__)
    if not has_counts:
        storage = open_storage(output, fetch)
        tmp = storage.temp_path(counts_path(source, file_index))
        with open(tmp, "wb") as fh:       # a file object: np.save would add ".npy" to a path
            np.save(fh, np.concatenate(per_row) if per_row else np.empty(0, np.int32), allow_pickle=False)
        storage.commit(tmp, counts_path(source, file_index))
    return {"source": source, "file": uri, "file_index": file_index, "has_token_count": has_counts, "groups": groups,
            "schema": schema.serialize().to_pybytes(),
            "bins": None if bins is None else {"documents": bins[0].tolist(), "tokens": bins[1].tolist()}}


def copy_tokens(storage, parquet, source: int, file_index: int, group: int, repeat: Repeat | None,
                copy: int) -> np.ndarray:
    """Token counts of a row group's rows in copy `copy` (0 for the rows outside it), for the budget cut."""
    counts = row_tokens(storage, parquet, source, file_index, group)
    if repeat is None:
        return counts
    values = column_values(parquet.read_row_group(group, columns=[repeat.column]), repeat.column)
    return np.where(repeat.times_of(values) > copy, counts, 0)


def row_tokens(storage, parquet, source: int, file_index: int, group: int) -> np.ndarray:
    """Token counts of one row group's rows (from the column, or from the scan's side file)."""
    if TOKENS in parquet.schema_arrow.names:
        return parquet.read_row_group(group, columns=[TOKENS]).column(0).to_numpy(zero_copy_only=False).astype(np.int64)
    counts = np.load(io.BytesIO(storage.read_bytes(counts_path(source, file_index))))
    start = sum(parquet.metadata.row_group(g).num_rows for g in range(group))
    return counts[start:start + parquet.metadata.row_group(group).num_rows].astype(np.int64)


def write_shard(index: int, chunks: list[dict[str, Any]], names: list[str], file_index: dict[str, int],
                schema_bytes: bytes, settings: dict[str, Any], fetch: FetchConfig, output: str) -> dict[str, Any]:
    """Read the shard's chunks (in their dealt, random order), shuffle documents within windows of about
    `shuffle_window_bytes`, and write `mix/shard-IIIII-NNNNN.parquet` with every input column + corpus."""
    storage = open_storage(output, fetch)
    schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
    limits = ShardLimits(max_bytes=settings["shard_max_bytes"], row_group_bytes=settings["row_group_bytes"])
    writer = ShardWriter(storage, "mix", f"shard-{index:05d}", schema, limits)
    rng = np.random.default_rng([settings["seed"], 7, index])
    repeats: list[Repeat | None] = settings.get("repeats") or [None] * len(names)
    written: dict[int, np.ndarray] = {}         # source -> [documents, tokens] per bin (with repeat)
    window: list[pa.Table] = []
    window_bytes = 0
    opened: dict[str, Any] = {}

    def flush() -> None:
        nonlocal window, window_bytes
        if window:
            table = pa.concat_tables(window)
            writer.add_table(table.take(pa.array(rng.permutation(table.num_rows))))
        window, window_bytes = [], 0

    for raw in chunks:
        chunk = Chunk(**raw)
        if chunk.file not in opened:
            opened.clear()       # one open file at a time is enough: chunks of a file are not grouped
            opened[chunk.file] = open_parquet(chunk.file, fetch)
        parquet = opened[chunk.file]
        table = parquet.read_row_group(chunk.group).slice(chunk.start, chunk.stop - chunk.start)
        if TOKENS not in table.column_names:
            counts = row_tokens(storage, parquet, chunk.source, file_index[chunk.file], chunk.group)
            table = table.append_column(TOKENS, pa.array(counts[chunk.start:chunk.stop], pa.int64()))
        repeat = repeats[chunk.source]
        if repeat is not None:                  # this copy: the rows whose times exceed it
            values = column_values(table, repeat.column)
            keep = repeat.times_of(values) > chunk.copy
            table = table.filter(pa.array(keep))
            which = repeat.bins_of(values[keep])
            tally = written.setdefault(chunk.source, np.zeros((2, len(repeat.maxes) + 1), dtype=np.int64))
            tally[0] += np.bincount(which, minlength=tally.shape[1])
            tally[1] += np.bincount(which, weights=table.column(TOKENS).to_numpy(zero_copy_only=False),
                                    minlength=tally.shape[1]).astype(np.int64)
        table = table.append_column(CORPUS, pa.array([names[chunk.source]] * table.num_rows, pa.string()))
        window.append(conform(table, schema))
        window_bytes += table.nbytes
        if window_bytes >= settings["shuffle_window_bytes"]:
            flush()
    flush()
    return {"shard": index, "shards": writer.close(),
            "bins": {str(k): {"documents": v[0].tolist(), "tokens": v[1].tolist()} for k, v in written.items()}}
