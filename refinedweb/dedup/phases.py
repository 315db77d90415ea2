"""What the dedup methods share: the plan of a run (`DedupRun`), the scan skeleton that streams a part as
the earlier methods left it (`scan_part`, `Decisions`), bucket sizing, and the output phases (`finish_part`,
`merge_tails`). Plain functions of files under the output root, no Ray here.

Deduplication is corpus-wide: whatever the split of the work, two copies meet. Each method
(`dedup/methods/`, in `dedup.stages` order) scans the parts, applying what the earlier methods decided,
and shuffles 64-bit keyed records to buckets (`shuffle.py`); bucket tasks group equal keys and write their
decisions back to the parts; a last phase streams every part once more, applies every decision and writes
the shards.

Layout under `<output>/_work/dedup/` (deleted after a successful run unless `dedup.keep_work`):
  corpus.json                              the input files, their row counts, the part count
  <stage>/records/p=P.bin                  a scan's records of part P, bucket after bucket
  minhash/cc/r=R/{ls,ss}/q=Q/from=X.npy    edges of component round R, partition Q
  minhash/check/{a,b}/p=P/from=X.(npy|npz) the Jaccard check's two hops
  <stage>/removed/p=P/from=X.npy           part-local rows removed (minhash, url)
  exact_substring/bucket-marks/p=P/from=X.npy  part-local (row << 32 | token offset) of marked windows
  exact_substring/marks/p=P.npy            the same, merged into one sorted file per part
  <stage>/records/segments.bin             where each bucket's records are in the parts' files (`bucket_units`)
  url/kept/p=P.bin                         the URLs of part P's kept documents by key range (seen-URL store only)
  tails/[lang=L/]p=P.parquet               part P's last, partly filled shard (per language when partitioned; merge_tails)
Output: `<output>/dedup/[lang=L/]part-PPPPP/part-PPPPP-NNNNN.parquet` and `<output>/dedup/[lang=L/]merged/…`, with every input
column, listed in `<output>/dedup/.refinedweb/manifest.json`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io.parquet import ShardLimits, ShardWriter, conform
from ..io.remote import FetchConfig
from ..io.storage import language_folder, open_storage
from .corpus import Corpus, iter_part, load_corpus
from .shuffle import (
    BucketWriter,
    key_range,
    load_arrays,
    pack_array,
    passes_for,
    save_array,
    unpack_array,
    write_segment_table,
)
from .urls import has_url, url_hashes

DEDUP_DIR = "dedup"
WORK = f"_work/{DEDUP_DIR}"
CORPUS = f"{WORK}/corpus.json"
KEPT_URLS = f"{WORK}/url/kept"
KEPT_URL = np.dtype([("key", "<u8")])



def open_work(cfg: dict[str, Any], output: str) -> tuple[Any, FetchConfig, Corpus]:
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    return storage, fetch, load_corpus(storage, CORPUS)


def stages_before(cfg: dict[str, Any], stage: str) -> list[str]:
    stages = list(cfg["dedup"]["stages"])
    return stages[:stages.index(stage)]


def timed(started: float, **values: Any) -> dict[str, Any]:
    return {**values, "seconds": round(time.time() - started, 3)}


class PartFiles:
    """What one bucket task sends to the parts (removed rows, marks), gathered over all its passes in local spool
    files and written at the end as one sorted file per part, `<folder>/p=P/from=<name>.npy`. The names do not
    depend on the number of passes, so a redo with another memory budget replaces an interrupted attempt's files."""

    def __init__(self, storage, folder: str, name: str, dtype):
        self.storage, self.folder, self.name, self.dtype = storage, folder, name, np.dtype(dtype)
        self.spool = tempfile.mkdtemp(prefix="refinedweb-parts-")
        self.parts: set[int] = set()

    def add(self, parts: np.ndarray, values: np.ndarray) -> None:
        """Send `values[i]` to part `parts[i]`."""
        for p in np.unique(parts).tolist():
            with open(os.path.join(self.spool, f"{p}.bin"), "ab") as fh:
                np.ascontiguousarray(values[parts == p], dtype=self.dtype).tofile(fh)
            self.parts.add(p)

    def close(self) -> None:
        try:
            for p in sorted(self.parts):
                values = np.sort(np.fromfile(os.path.join(self.spool, f"{p}.bin"), dtype=self.dtype))
                save_array(self.storage, f"{self.folder}/p={p:05d}/from={self.name}.npy", values)
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)

    def __enter__(self) -> "PartFiles":
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
        else:
            shutil.rmtree(self.spool, ignore_errors=True)


def to_parts(storage, corpus: Corpus, folder: str, name: str, ordinals: np.ndarray) -> None:
    """Save the sorted part-local rows of `ordinals` under `<folder>/p=P/from=<name>.npy`, a file per part."""
    ordinals = np.sort(np.asarray(ordinals, dtype=np.int64))
    parts = corpus.part_of(ordinals)
    starts = corpus.part_starts
    for p in np.unique(parts):
        rows = (ordinals[parts == p] - starts[p]).astype(np.uint32)
        save_array(storage, f"{folder}/p={p:05d}/from={name}.npy", rows)


@dataclass
class DedupRun:
    """What a method's `run` schedules with: the run-units helper and the plan of this run."""

    units: Any                       # runtime.units.Units: runs a phase's units, skipping finished ones
    cfg: dict[str, Any]
    uri: str                         # the output root
    corpus: Corpus
    budget: int                      # bytes a task may hold
    log: Callable[[str], None]
    storage: Any
    fetch: FetchConfig
    seen: dict[str, Any] | None = None   # the seen-URL store this run reads and writes (`seen_store.plan`)

    @property
    def parts(self) -> int:
        return self.corpus.parts

    @property
    def part_keys(self) -> dict[int, str]:
        return {p: f"p={p:05d}" for p in range(self.corpus.parts)}

    def spent(self, folder: str) -> None:
        """A shuffle's records are read by its bucket phase only: once that is done, free the disk early."""
        if not self.cfg["dedup"]["keep_work"]:
            self.storage.delete_tree(folder)


def bucket_units(ctx: "DedupRun", stage: str, unit: str, scans: list[dict[str, Any]],
                 bytes_per_record: int) -> dict[str, tuple[int, int]]:
    """The bucket units of a shuffle: key -> (bucket, passes to stay within the task budget). Writes the
    segment table the bucket tasks read their segments from (unless every bucket is done already)."""
    counts = np.zeros((ctx.parts, ctx.corpus.buckets[stage]), dtype=np.int64)
    for scan in scans:
        counts[int(scan["part"])] = unpack_array(scan["records"])
    units = {f"b={b:05d}": (b, passes_for(int(n), bytes_per_record, ctx.budget))
             for b, n in enumerate(counts.sum(axis=0).tolist())}
    if not ctx.units.finished(unit, units):
        write_segment_table(ctx.storage, f"{WORK}/{stage}/records", counts)
    return units


def records_total(scans: list[dict[str, Any]]) -> int:
    return int(sum(int(unpack_array(s["records"]).sum()) for s in scans))


def bucket_stats(results: list[dict[str, Any]]) -> dict[str, int]:
    return {"buckets": len(results), "max_passes": max((r["passes"] for r in results), default=0)}


# ------------------------------------------------------------------------------- applying decisions

class RemovedRows:
    """A method's decision that removes whole documents: the part's rows listed under
    `<work>/<method>/removed/p=P/`."""

    extra_stats: tuple[str, ...] = ()

    def __init__(self, storage, method: str, part: int):
        arrays = load_arrays(storage, f"{WORK}/{method}/removed/p={part:05d}")
        self.removed = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.uint32)

    def __call__(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table, dict[str, int]]:
        removed = self.removed
        keep = ~np.isin(rows, removed, assume_unique=False) if len(removed) else np.ones(len(rows), bool)
        return rows[keep], table.filter(pa.array(keep)), {}


class Decisions:
    """What some methods decided for one part, applied to its batches in `dedup.stages` order (a context
    manager: files a decision maps, such as the exact-substring marks, are released on exit)."""

    def __init__(self, storage, cfg: dict[str, Any], part: int, stages: list[str]):
        from .methods import dedup_method

        self.stages = stages
        self.stack = ExitStack()
        self.appliers = {s: dedup_method(s).decision(storage, cfg, part, self.stack) for s in stages}
        self.stats = {s: {"docs_in": 0, "docs_out": 0, "chars_removed": 0,
                          **dict.fromkeys(self.appliers[s].extra_stats, 0)} for s in stages}

    def __enter__(self) -> "Decisions":
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def apply(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table]:
        """The batch's surviving rows and their table (text edited where a method cut it)."""
        for stage in self.stages:
            st = self.stats[stage]
            st["docs_in"] += len(rows)
            before = text_chars(table)
            rows, table, extra = self.appliers[stage](rows, table)
            for key, value in extra.items():
                st[key] += value
            st["docs_out"] += len(rows)
            st["chars_removed"] += before - text_chars(table)
        return rows, table


def replace_text(table: pa.Table, texts: list[str | None], cfg: dict[str, Any]) -> pa.Table:
    old = table.column("text").to_pylist()
    index = table.column_names.index("text")
    if "token_count" in table.column_names and cfg["tokens"]["enabled"]:
        # a document with spans cut out has fewer tokens: count again (only those)
        from ..stages.tokens import count_tokens

        counts = table.column("token_count").to_pylist()
        for i, (a, b) in enumerate(zip(old, texts)):
            if a != b and b is not None:
                counts[i] = count_tokens(b, cfg["tokens"]["encoding"])
        column = table.column_names.index("token_count")
        table = table.set_column(column, "token_count", pa.array(counts, table.schema.field("token_count").type))
    return table.set_column(index, "text", pa.array(texts, table.schema.field("text").type))


def text_chars(table: pa.Table) -> int:
    """Characters of the text column, counted in Arrow (no Python strings)."""
    if not table.num_rows or "text" not in table.column_names:
        return 0
    return int(pc.sum(pc.utf8_length(table.column("text"))).as_py() or 0)


# ------------------------------------------------------------------------------------------- scans

def scan_part(part: int, cfg: dict[str, Any], output: str, stage: str, dtype: np.dtype, columns: list[str],
              produce, route=None) -> str:
    """Stream the part as the earlier sub-stages left it; `produce(batches)` yields record arrays, which go
    to the stage's buckets (by `key % buckets`, or `route(keys, buckets)`). Returns the records per bucket,
    packed (they locate each bucket in the part's file)."""
    storage, fetch, corpus = open_work(cfg, output)
    buckets = corpus.buckets[stage]
    writer = BucketWriter(storage, f"{WORK}/{stage}/records", part, buckets, dtype)
    try:
        with Decisions(storage, cfg, part, stages_before(cfg, stage)) as decisions:
            batches = (decisions.apply(rows, table) for rows, table in iter_part(corpus, part, fetch, columns))
            for records in produce(batches):
                writer.add(records, None if route is None else route(records["key"], buckets))
        return pack_array(writer.close())
    except BaseException:
        writer.abort()
        raise


# -------------------------------------------------------------------------------------------- output

def finish_part(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Stream the part, apply every sub-stage's decisions in order, write full shards (a last, partly
    filled one goes to the tails) and the kept URLs' hashes. With `langid.partition_by_language` each
    language has its folder (`dedup/lang=xx/`), its shards and its tail."""
    started = time.time()
    storage, fetch, corpus = open_work(cfg, output)
    schema = corpus.schema
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
    with ExitStack() as cleanup, Decisions(storage, cfg, part, list(cfg["dedup"]["stages"])) as decisions:
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
    return timed(started, part=part, docs_in=docs_in, docs_out=docs_out, stages=stats, shards=shards,
                 tails=tails, **extra)


def part_tails(finished: dict[str, Any]) -> list[dict[str, Any]]:
    """The tails a finished part left (a run resumed from an older version recorded one, as `tail`)."""
    return list(finished.get("tails") or ([finished["tail"]] if finished.get("tail") else []))


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


