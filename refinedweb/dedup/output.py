"""The dedup stage's output phases: every part streamed once more with every method's decisions applied, full
shards written (`finish_part`; the kept URLs routed to this run's contribution to the seen-URL store when it
writes one), and the parts' last, partly filled shards merged into full ones (`plan_tail_merges`,
`merge_tails`).

Output: `<output>/dedup/[lang=L/]part-PPPPP/part-PPPPP-NNNNN.parquet` and `<output>/dedup/[lang=L/]merged/…`, with
every input column, listed in `<output>/dedup/.refinedweb/manifest.json`.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io.parquet import ShardLimits, ShardWriter, conform
from ..io.remote import FetchConfig
from ..io.storage import language_folder, open_storage
from .corpus import iter_part
from .decisions import Decisions
from .kernels.url_keys import has_url, url_hashes
from .methods import configured
from .plan import DEDUP_DIR, WORK, open_work, timed
from .shuffle import BucketWriter, key_range, pack_array

KEPT_URLS = f"{WORK}/url/kept"
KEPT_URL = np.dtype([("key", "<u8")])


def finish_part(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Stream the part, apply every method's decisions in order, write full shards (a last, partly
    filled one goes to the tails) and the kept URLs' hashes. With `langid.partition_by_language` each
    language has its folder (`dedup/lang=xx/`), its shards and its tail."""
    started = time.time()
    storage, fetch, corpus = open_work(cfg, output)
    schema = output_schema(corpus.schema, cfg)
    limits = ShardLimits.from_config(cfg["output"])
    by_language = bool(cfg["langid"]["partition_by_language"])
    writers: dict[str, ShardWriter] = {}

    def writer(language: str) -> ShardWriter:
        if language not in writers:
            folder = f"{DEDUP_DIR}/{language_folder(language)}" if by_language else DEDUP_DIR
            writers[language] = ShardWriter(storage, f"{folder}/part-{part:05d}", f"part-{part:05d}", schema, limits)
        return writers[language]

    if not by_language:
        writer("")
    ranges = corpus.buckets.get("url_store", 0)        # this run writes to the seen-URL store
    kept_urls = BucketWriter(storage, KEPT_URLS, part, ranges, KEPT_URL) if ranges else None
    with ExitStack() as cleanup, Decisions(storage, cfg, part, list(configured(cfg))) as decisions:
        if kept_urls is not None:
            cleanup.callback(kept_urls.abort)          # its spool; close() has copied it when all went well
        docs_in = docs_out = 0
        for rows, table in iter_part(corpus, part, fetch):
            docs_in += len(rows)
            rows, table = decisions.apply(rows, table)
            docs_out += len(rows)
            table = conform(table, schema)
            if by_language:
                # rows without a language (null, or no such column) go where the filter stage puts them
                languages = (pc.fill_null(table.column("language").cast(pa.string()), "")
                             if "language" in table.column_names else pa.array([""] * table.num_rows, pa.string()))
                for language in sorted(set(languages.to_pylist())):
                    writer(language).add_table(table.filter(pc.equal(languages, language)))
            else:
                writer("").add_table(table)
            if kept_urls is not None:
                urls = table.column("url").to_pylist()
                records = np.zeros(int(has_url(urls).sum()), KEPT_URL)
                records["key"] = url_hashes([u for u, p in zip(urls, has_url(urls)) if p])
                kept_urls.add(records, key_range(records["key"], ranges))
        stats = decisions.stats
        extra = {"kept_urls": pack_array(kept_urls.close())} if kept_urls is not None else {}
    shards, tails = [], []
    for language, shard_writer in sorted(writers.items()):
        folder = f"{language_folder(language)}/" if by_language else ""
        tail_path = f"{WORK}/tails/{folder}p={part:05d}.parquet"
        written, tail = shard_writer.close_with_tail(tail_path)
        shards += written
        if tail is None:
            storage.delete(tail_path)      # from an earlier attempt
        else:
            tails.append({**tail, "language": language} if by_language else tail)
    return timed(started, part=part, docs_in=docs_in, docs_out=docs_out, methods=stats, shards=shards,
                 tails=tails, **extra)


def output_schema(schema: pa.Schema, cfg: dict[str, Any]) -> pa.Schema:
    """Every input column, and the columns the methods add (`output_columns`: MinHash's duplicate_count)."""
    for module in configured(cfg).values():
        for name, kind in getattr(module, "output_columns", lambda cfg: {})(cfg).items():
            field = pa.field(name, kind)
            schema = schema.set(schema.get_field_index(name), field) if name in schema.names else schema.append(field)
    return schema


def part_tails(finished: dict[str, Any]) -> list[dict[str, Any]]:
    """The tails (last, partly filled shards) a finished part left: one, or one per language."""
    return list(finished.get("tails", []))


def plan_tail_merges(tails: list[dict[str, Any]], limits: ShardLimits) -> list[list[dict[str, Any]]]:
    """Group the parts' tails (in part order; per language when partitioned) into bins of about one full shard
    each."""
    def size(entry):
        ratios = [entry["bytes"] / limits.max_bytes if limits.max_bytes else 0.0,
                  entry["tokens"] / limits.max_tokens if limits.max_tokens else 0.0,
                  entry["rows"] / limits.max_rows if limits.max_rows else 0.0]
        return max(ratios)

    bins: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    filled = 0.0
    for tail in sorted(tails, key=lambda t: (t.get("language", ""), t["path"])):
        if current and (filled + size(tail) > 1.0 or tail.get("language") != current[0].get("language")):
            bins.append(current)
            current, filled = [], 0.0
        current.append(tail)
        filled += size(tail)
    if current:
        bins.append(current)
    return bins


def merge_tails(index: int, tails: list[dict[str, Any]], cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Stream a bin of tails, row group by row group, into full shards."""
    started = time.time()
    storage = open_storage(output, FetchConfig.from_config(cfg))
    writer = None
    for tail in tails:
        with storage.local_copy(tail["path"]) as path:
            source = pq.ParquetFile(path)
            if writer is None:
                language = tail.get("language")          # a bin holds the tails of one language
                folder = f"{DEDUP_DIR}/{language_folder(language)}" if language is not None else DEDUP_DIR
                writer = ShardWriter(storage, f"{folder}/merged", f"merged-{index:05d}", source.schema_arrow,
                                     ShardLimits.from_config(cfg["output"]))
            for group in range(source.num_row_groups):
                writer.add_table(source.read_row_group(group))
    shards = writer.close() if writer is not None else []
    return timed(started, bin=index, tails=len(tails), shards=shards)
