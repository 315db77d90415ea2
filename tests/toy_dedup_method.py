"""A dedup method as a user would write one: exact-document dedup (the same text, up to case and whitespace when
`exact_document.normalize` is on, keeps only its earliest copy), this module plus one YAML section
`exact_document: {normalize: true}`, named in `dedup.methods` by its dotted path. It uses the same shuffle as the
packaged methods, so it is corpus-wide whatever the split. tests/test_dedup_methods.py checks it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import xxhash

from refinedweb.dedup.decisions import PartFiles, RemovedRows
from refinedweb.dedup.plan import WORK, DedupRun, bucket_units, open_work, timed
from refinedweb.dedup.scan import scan_part
from refinedweb.dedup.shuffle import bucket_segments, read_bucket

NAME = "exact_document"
RECORD = np.dtype([("key", "<u8"), ("row", "<u4")])
BUCKET_BYTES = 64                       # a record, its ordinal and the sort's temporaries


def planned_records(cfg: dict[str, Any], corpus) -> int:
    return corpus.documents


def min_buckets(cfg: dict[str, Any], parts: int) -> int:
    return parts


def decision(storage, cfg: dict[str, Any], part: int, stack) -> RemovedRows:
    return RemovedRows(storage, NAME, part)


def scan(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    started = time.time()
    normalize = bool(cfg[NAME]["normalize"])

    def produce(batches):
        for rows, table in batches:
            texts = [t or "" for t in table.column("text").to_pylist()]
            if normalize:
                texts = [" ".join(t.lower().split()) for t in texts]
            records = np.empty(len(rows), RECORD)
            records["key"] = [xxhash.xxh3_64_intdigest(t.encode("utf-8", "surrogatepass")) for t in texts]
            records["row"] = rows
            yield records

    return timed(started, part=part, records=scan_part(part, cfg, output, NAME, RECORD, ["text"], produce))


def bucket(index: int, passes: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """All but the earliest document of each text."""
    started = time.time()
    storage, _, corpus = open_work(cfg, output)
    folder = f"{WORK}/{NAME}/records"
    removed = 0
    with PartFiles(storage, f"{WORK}/{NAME}/removed", f"b{index:05d}", np.uint32) as sink:
        for records, ordinals in read_bucket(storage, folder, bucket_segments(storage, folder, index, corpus.parts),
                                             RECORD, corpus.part_starts, passes):
            order = np.lexsort((ordinals, records["key"]))
            keys = records["key"][order]
            later = np.zeros(len(keys), dtype=bool)
            later[1:] = keys[1:] == keys[:-1]
            gone = ordinals[order[later]]
            parts = corpus.part_of(gone)
            sink.add(parts, (gone - corpus.part_starts[parts]).astype(np.uint32))
            removed += len(gone)
    return timed(started, bucket=index, passes=passes, removed=removed)


def run(ctx: DedupRun) -> dict[str, Any]:
    scans = ctx.units.run(f"{NAME}-scan", scan, {k: (p, ctx.cfg, ctx.uri) for p, k in ctx.part_keys.items()})
    planned = bucket_units(ctx, NAME, f"{NAME}-bucket", scans, BUCKET_BYTES)
    buckets = ctx.units.run(f"{NAME}-bucket", bucket, {k: (b, n, ctx.cfg, ctx.uri) for k, (b, n) in planned.items()})
    ctx.spent(f"{WORK}/{NAME}/records")
    return {"removed": sum(b["removed"] for b in buckets), "buckets": len(buckets)}
