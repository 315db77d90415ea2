"""URL deduplication (RW §3.3): one document per normalised URL, across the input and across runs. Its
phases and the order they run in.

scan: (normalised URL hash, priority) -> buckets, each a key range; bucket: all but the first (or the
highest-priority) document of each URL, and URLs kept by other runs (`dedup.url.seen`: that key range of each
contribution in the seen-URL store, `dedup/seen_store.py`), are removed. After the output is written, the kept
documents' URLs become this run's contribution to the store (`store`, one unit per key range, then `commit`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import UserError
from .. import seen_store
from ..corpus import Corpus
from ..decisions import COUNT, CountedRows, PartFiles
from ..kernels.url_keys import has_url, url_hashes
from ..plan import WORK, DedupRun, bucket_stats, bucket_units, methods_before, open_work, timed
from ..scan import scan_part
from ..shuffle import (
    bucket_segments,
    key_range,
    range_start,
    read_bucket,
    records_file,
    task_budget_bytes,
    unpack_array,
    write_segment_table,
)

NAME = "url"
VERSION = 1                # the resume fingerprint covers it: bump it when what the method removes changes
BUCKET_BYTES = 128
KEPT = f"{WORK}/url/kept"       # finish_part's kept URLs per part, by key range of this run's contribution
STORE_RANGE_BYTES = 256 << 20   # at most this much of the contribution in one range file (and one task)


def planned_records(cfg: dict[str, Any], corpus: Corpus) -> int:
    return corpus.documents


def min_buckets(cfg: dict[str, Any], parts: int) -> int:
    return parts


def plan(cfg: dict[str, Any], corpus: Corpus, budget: int, output: str, fetch) -> dict[str, Any]:
    """What a fresh run records for URL dedup (a resume reuses it): with a seen-URL store, the contributions of
    the other runs it reads (`seen_store.plan`) and the key ranges of its own contribution, enough that one
    range of the kept documents' hashes, sorted, fits a task's budget."""
    if not cfg["dedup"]["url"]["seen"]:
        return {}
    per_range = max(512, min(STORE_RANGE_BYTES, budget // 4))
    return {"seen": seen_store.plan(cfg["dedup"]["url"]["seen"], output, fetch),
            "buckets": {"url_store": max(1, min(8192, -(-corpus.documents * 8 // per_range)))}}


def store_ranges(ctx: DedupRun) -> int:
    """Key ranges of this run's contribution to the seen-URL store (0: it writes none; `output.finish_part`
    routes the kept URLs to them)."""
    return int(ctx.corpus.buckets.get("url_store", 0))


COLUMN = "url_duplicate_count"   # the kept document of a URL: how many documents of this run had that URL


def decision(storage, cfg: dict[str, Any], part: int, stack) -> CountedRows:
    """One document per URL stays, with the number of this run's documents that reached URL dedup with its URL
    (after MinHash and exact substrings; 1 for a unique or missing URL) as `url_duplicate_count`."""
    return CountedRows(storage, NAME, part, COLUMN)


def output_columns(cfg: dict[str, Any]) -> dict[str, pa.DataType]:
    return {COLUMN: pa.int32()}


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
    """(normalised URL hash, priority) of the part's documents that have a URL, to buckets by hash. A document
    without one (null, empty) has no key: it is counted as `no_url` and kept."""
    started = time.time()
    priority = cfg["dedup"]["url"]["priority"]
    dtype = priority_dtype(_arrow_type(priority_type))
    docs = no_url = 0

    def produce(batches):
        nonlocal docs, no_url
        for rows, table in batches:
            urls = table.column("url").to_pylist()
            present = has_url(urls)
            records = np.empty(int(present.sum()), dtype=dtype)
            records["key"] = url_hashes([u for u, p in zip(urls, present) if p])
            records["row"] = rows[present]
            if priority:
                records["priority"] = priority_keys(table.column(priority), dtype)[present]
            docs += len(records)
            no_url += len(urls) - len(records)
            yield records

    # text only where an earlier exact-substring cut may drop a document under min_words
    text = ["text"] if "exact_substring" in methods_before(cfg, "url") else []
    counts = scan_part(part, cfg, output, "url", dtype, [*text, "url"] + ([priority] if priority else []), produce,
                       route=key_range)          # buckets are key ranges: a bucket reads one range of the store
    return timed(started, part=part, docs=docs, no_url=no_url, records=counts)


def _arrow_type(name: str | None) -> pa.DataType | None:
    if name is None:
        return None
    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(name))).field(0).type


def url_bucket(bucket: int, passes: int, seen_slices: list, priority_type: str | None, cfg: dict[str, Any],
               output: str) -> dict[str, Any]:
    """One document per normalised URL: the highest priority (else the earliest); and none whose URL another
    run kept (`seen_slices`: this bucket's key range of each contribution the run reads)."""
    started = time.time()
    storage, fetch, corpus = open_work(cfg, output)
    dtype = priority_dtype(_arrow_type(priority_type))
    starts = corpus.part_starts
    buckets = corpus.buckets[NAME]
    lo, hi = range_start(bucket, buckets), range_start(bucket + 1, buckets)
    store = seen_store.open_store(cfg["dedup"]["url"]["seen"], fetch) if seen_slices else None
    chunk = max(1 << 16, task_budget_bytes(cfg) // 64)
    folder = f"{WORK}/url/records"
    within = earlier = 0
    with PartFiles(storage, f"{WORK}/url/removed", f"b{bucket:05d}", np.uint32) as sink, \
            PartFiles(storage, f"{WORK}/url/counts", f"b{bucket:05d}", COUNT) as count_sink:
        for k, (records, ordinals) in enumerate(read_bucket(storage, folder,
                                                            bucket_segments(storage, folder, bucket, corpus.parts),
                                                            dtype, starts, passes)):
            if not len(records):
                continue
            sort_keys = [~ordinals.astype(np.uint64)]
            if "priority" in dtype.names:
                sort_keys.append(records["priority"])
            order = np.lexsort((*sort_keys, records["key"]))
            keys = records["key"][order]
            winner = np.ones(len(keys), dtype=bool)       # the last of each URL's run: highest priority, earliest
            winner[:-1] = keys[1:] != keys[:-1]
            old = np.zeros(len(keys), dtype=bool)
            if store is not None:
                in_pass = (lambda h, k=k: (h >> np.uint64(32)) % np.uint64(passes) == np.uint64(k)) if passes > 1 else None
                old = seen_store.seen_in(store, seen_slices, keys, lo, hi, in_pass, chunk) & winner
            within += int(np.count_nonzero(~winner))
            earlier += int(np.count_nonzero(old))
            removed = ordinals[order[~winner | old]]
            parts = corpus.part_of(removed)
            sink.add(parts, (removed - starts[parts]).astype(np.uint32))
            ends = np.flatnonzero(winner)                  # each URL's run ends at its winner
            sizes = np.diff(ends, prepend=-1)
            counted = (sizes > 1) & ~old[ends]
            if counted.any():
                kept = ordinals[order[ends[counted]]]
                parts = corpus.part_of(kept)
                records = np.empty(len(kept), COUNT)
                records["row"] = (kept - starts[parts]).astype(np.uint32)
                records["count"] = sizes[counted]
                count_sink.add(parts, records)
    return timed(started, bucket=bucket, passes=passes, duplicates_in_run=within, seen_in_earlier_runs=earlier)


def store_range(index: int, seen: dict[str, Any], cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """One key range of this run's contribution: the kept documents' URL hashes in it, from every part, read
    into one array (about 3x the range's bytes at the peak, with the sort)."""
    started = time.time()
    storage, fetch, corpus = open_work(cfg, output)
    segments = bucket_segments(storage, KEPT, index, corpus.parts)
    hashes = np.empty(sum(count for _, _, count in segments), dtype="<u8")
    at = 0
    for part, first, count in segments:
        with storage.local_range(records_file(KEPT, part), first * 8, count * 8) as (path, offset):
            with open(path, "rb") as fh:
                fh.seek(offset)
                if fh.readinto(memoryview(hashes[at:at + count]).cast("B")) != count * 8:
                    raise OSError(f"{records_file(KEPT, part)}: shorter than its segment table says")
        at += count
    result = seen_store.write_range(seen_store.open_store(seen["store"], fetch), seen, index, hashes)
    return timed(started, **result)


def run(ctx: DedupRun) -> dict[str, Any]:
    t0 = time.time()
    units, cfg, uri = ctx.units, ctx.cfg, ctx.uri
    priority_type = _priority_type(cfg, ctx.corpus)
    scans = units.run("url-scan", scan_url, {k: (p, priority_type, cfg, uri) for p, k in ctx.part_keys.items()})
    planned = bucket_units(ctx, NAME, "url-bucket", scans, BUCKET_BYTES)
    seen = ctx.plans.get(NAME, {}).get("seen")
    slices: list[list] = [[] for _ in planned]
    if seen and seen["read"] and not units.finished("url-bucket", planned):
        slices = seen_store.bucket_slices(seen_store.open_store(seen["store"], ctx.fetch), seen["read"], len(planned))
    buckets = units.run("url-bucket", url_bucket, {k: (b, n, slices[b], priority_type, cfg, uri)
                                                   for k, (b, n) in planned.items()})
    out = {key: sum(r[key] for r in buckets) for key in ("duplicates_in_run", "seen_in_earlier_runs")}
    out["no_url"] = sum(s.get("no_url", 0) for s in scans)
    out.update(bucket_stats(buckets))
    ctx.spent(f"{WORK}/url/records")
    ctx.log(f"[dedup] url: {out['duplicates_in_run']:,} duplicate URL(s), {out['seen_in_earlier_runs']:,} seen in "
            f"earlier runs, {out['no_url']:,} without a URL, {time.time() - t0:.1f}s")
    return out


def after_output(ctx: DedupRun, finished: list[dict[str, Any]]) -> dict[str, Any]:
    """This run's contribution to the seen-URL store: the kept documents' URLs, one unit per key range, then
    the commit (index, record; the run's older attempts deleted)."""
    seen = ctx.plans.get(NAME, {}).get("seen")
    if not seen:
        return {}
    ranges = store_ranges(ctx)
    keys = {f"r={r:05d}": (r, seen, ctx.cfg, ctx.uri) for r in range(ranges)}
    if not ctx.units.finished("url-store", keys):
        counts = np.zeros((ctx.parts, ranges), dtype=np.int64)
        for result in finished:
            counts[int(result["part"])] = unpack_array(result["kept_urls"])
        write_segment_table(ctx.storage, KEPT, counts)
    written = ctx.units.run("url-store", store_range, keys)
    record = seen_store.commit(seen_store.open_store(seen["store"], ctx.fetch), seen, written, f"{ctx.uri}/dedup")
    ctx.log(f"[dedup] seen-URL store {seen['store']}: read {len(seen['read'])} other run(s) "
            f"({seen['urls_read']:,} URLs); this run's contribution {seen['run']}: {record['urls']:,} URLs")
    return {"seen_store": {"runs_read": len(seen["read"]), "urls_read": seen["urls_read"], "run": seen["run"],
                           "contribution_urls": record["urls"]}}
