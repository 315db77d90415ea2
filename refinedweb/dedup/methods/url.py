"""URL deduplication (RW §3.3): one document per normalised URL, across the input and across runs. Its
phases and the order they run in.

scan: (normalised URL hash, priority) -> buckets; bucket: all but the first (or the highest-priority)
document of each URL, and URLs kept by earlier runs (`dedup.url.seen`), are removed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import UserError
from ..corpus import Corpus
from ..phases import (
    WORK,
    DedupRun,
    RemovedRows,
    bucket_stats,
    buckets_of,
    open_work,
    scan_part,
    stages_before,
    timed,
    to_parts,
)
from ..shuffle import read_bucket
from ..urls import SeenUrls, url_hashes

NAME = "url"
BUCKET_BYTES = 128


def planned_records(cfg: dict[str, Any], corpus: Corpus) -> int:
    return corpus.documents


def min_buckets(cfg: dict[str, Any], parts: int) -> int:
    return parts


def decision(storage, cfg: dict[str, Any], part: int, stack) -> RemovedRows:
    return RemovedRows(storage, NAME, part)


def check(cfg: dict[str, Any], corpus: Corpus) -> None:
    """Before any work: the priority column exists and can be ordered."""
    priority = cfg["dedup"]["url"]["priority"]
    if priority:
        if priority not in corpus.schema.names:
            raise UserError(f"dedup.url.priority names column '{priority}', which the input does not have")
        priority_dtype(corpus.schema.field(priority).type)


def _priority_type(cfg: dict[str, Any], corpus: Corpus) -> str | None:
    priority = cfg["dedup"]["url"]["priority"]
    return pa.schema([corpus.schema.field(priority)]).serialize().to_pybytes().hex() if priority else None


def priority_dtype(arrow_type: pa.DataType | None) -> np.dtype:
    if arrow_type is None:
        return np.dtype([("key", "<u8"), ("row", "<u4")])
    width = "S32" if (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)) else "<u8"
    return np.dtype([("key", "<u8"), ("row", "<u4"), ("priority", width)])


def priority_keys(column: pa.ChunkedArray, dtype: np.dtype) -> np.ndarray:
    """Values of the priority column as keys that sort like them (strings by their first 32 UTF-8 bytes;
    numbers, dates and timestamps by value); a missing value sorts lowest."""
    if dtype["priority"].kind == "S":
        return np.array([(v or "").encode("utf-8")[:32] for v in column.to_pylist()], dtype=dtype["priority"])
    kind = column.type
    if pa.types.is_floating(kind):
        values = pc.fill_null(column.cast(pa.float64()), -np.inf).to_numpy().astype(np.float64)
        bits = values.view(np.uint64)
        negative = (bits >> np.uint64(63)).astype(bool)
        return np.where(negative, ~bits, bits | np.uint64(1 << 63))
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        column = column.cast(pa.int64())
    elif not (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
        raise UserError(f"dedup.url.priority: column type {kind} cannot be ordered (use a number, date or string)")
    values = pc.fill_null(column.cast(pa.int64()), np.iinfo(np.int64).min).to_numpy().astype(np.int64)
    return values.view(np.uint64) ^ np.uint64(1 << 63)


def scan_url(part: int, priority_type: str | None, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """(normalised URL hash, priority) of the part's documents, to buckets by hash."""
    started = time.time()
    priority = cfg["dedup"]["url"]["priority"]
    dtype = priority_dtype(_arrow_type(priority_type))
    docs = 0

    def produce(batches):
        nonlocal docs
        for rows, table in batches:
            records = np.empty(len(rows), dtype=dtype)
            records["key"] = url_hashes(table.column("url").to_pylist())
            records["row"] = rows
            if priority:
                records["priority"] = priority_keys(table.column(priority), dtype)
            docs += len(rows)
            yield records

    # text only where an earlier exact-substring cut may drop a document under min_words
    text = ["text"] if "exact_substring" in stages_before(cfg, "url") else []
    counts = scan_part(part, cfg, output, "url", dtype, [*text, "url"] + ([priority] if priority else []), produce)
    return timed(started, part=part, docs=docs, records=counts)


def _arrow_type(name: str | None) -> pa.DataType | None:
    if name is None:
        return None
    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(name))).field(0).type


def url_bucket(bucket: int, passes: int, segments: list, priority_type: str | None, cfg: dict[str, Any],
               output: str) -> dict[str, Any]:
    """One document per normalised URL: the highest priority (else the earliest); and none whose URL an
    earlier run kept (`dedup.url.seen`)."""
    started = time.time()
    storage, fetch, corpus = open_work(cfg, output)
    dtype = priority_dtype(_arrow_type(priority_type))
    starts = corpus.part_starts
    seen = SeenUrls(cfg["dedup"]["url"]["seen"], fetch)
    within = earlier = 0
    for k, (records, ordinals) in enumerate(read_bucket(storage, f"{WORK}/url/records", segments, dtype, starts,
                                                        passes)):
        if not len(records):
            continue
        sort_keys = [~ordinals.astype(np.uint64)]
        if "priority" in dtype.names:
            sort_keys.append(records["priority"])
        order = np.lexsort((*sort_keys, records["key"]))
        keys = records["key"][order]
        winner = np.ones(len(keys), dtype=bool)       # the last of each URL's run: highest priority, earliest
        winner[:-1] = keys[1:] != keys[:-1]
        old = seen.contains(keys) & winner
        within += int(np.count_nonzero(~winner))
        earlier += int(np.count_nonzero(old))
        removed = ordinals[order[~winner | old]]
        to_parts(storage, corpus, f"{WORK}/url/removed", f"b{bucket:05d}-{k:03d}", removed)
    return timed(started, bucket=bucket, passes=passes, duplicates_in_run=within, seen_in_earlier_runs=earlier)


def run(ctx: DedupRun) -> dict[str, Any]:
    t0 = time.time()
    units, cfg, uri = ctx.units, ctx.cfg, ctx.uri
    priority_type = _priority_type(cfg, ctx.corpus)
    scans = units.run("url-scan", scan_url, {k: (p, priority_type, cfg, uri) for p, k in ctx.part_keys.items()})
    buckets = units.run("url-bucket", url_bucket,
                        {f"b={b:05d}": (b, n, seg, priority_type, cfg, uri)
                         for b, n, seg in buckets_of(scans, BUCKET_BYTES, ctx.budget)})
    out = {key: sum(r[key] for r in buckets) for key in ("duplicates_in_run", "seen_in_earlier_runs")}
    out.update(bucket_stats(buckets))
    ctx.spent(f"{WORK}/url/records")
    ctx.log(f"[dedup] url: {out['duplicates_in_run']:,} duplicate URL(s), {out['seen_in_earlier_runs']:,} seen in "
            f"earlier runs, {time.time() - t0:.1f}s")
    return out
