"""The dedup stage's phases, each a pure function of files under the output root (no Ray here).

Layout under `<output>/_work/dedup/` (beside the output folder, so that no reader's `dedup/**/*.parquet`
glob sees it; deleted after a successful run unless `dedup.keep_work`):
  parts/p=P/f=F.parquet   phase 1: input rows of part P from input file F, plus `_doc` and `_urlhash`
  bands/p=P/f=F.npz       phase 1: MinHash band keys (only the 450 band hashes, not signatures) + `_doc`
  edges/p=P/g=G.npz       phase 2a: candidate pairs from band group G of part P
  minhash/p=P.npz         phase 2b: `_doc` keys removed as near duplicates in part P
  (after phase 3) ../_urls/p=P.npz: URL hashes of the documents part P kept, for the seen-URL store
  tails/p=P.parquet       phase 3: part P's last, partly filled shard
Output, with every input column: `<output>/dedup/part-PPPPP/part-PPPPP-NNNNN.parquet` (full shards of
each part) and `<output>/dedup/merged/merged-BBBBB-NNNNN.parquet` (phase 4: the tails merged into full
shards), listed with rows, tokens, bytes and checksums in `<output>/dedup/_manifest.json`.

`_doc` = input file index << 32 | row index: the input order, which decides survivors ("first wins").
Parts are hash partitions by normalised URL, so URL duplicates meet in one part.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from ..errors import UserError
from ..io.inputs import open_input
from ..io.parquet import ShardLimits, ShardWriter
from ..io.remote import FetchConfig
from ..io.storage import open_storage
from .components import duplicates_to_remove
from .urls import SeenUrls, url_hashes

DEDUP_DIR = "dedup"
WORK = f"_work/{DEDUP_DIR}"
URLS = f"{DEDUP_DIR}/_urls"       # kept URL hashes per part (outside _work, which may be deleted at the end)
REQUIRED_COLUMNS = ("id", "url", "text")
INTERNAL = ("_doc", "_urlhash")


def read_input_table(uri: str, fetch: FetchConfig) -> pa.Table:
    with open_input(uri, fetch) as fh:
        data = fh.read()
    table = pq.read_table(pa.BufferReader(data))
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise UserError(f"Parquet input {uri} is missing column(s) {', '.join(missing)} "
                        f"(dedup needs {', '.join(REQUIRED_COLUMNS)})")
    return table


def part_of(hashes: np.ndarray, parts: int) -> np.ndarray:
    return ((hashes >> np.uint64(17)) % np.uint64(parts)).astype(np.int64)


def _save_npz(storage, relpath: str, **arrays) -> None:
    tmp = storage.temp_path(relpath)
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    storage.commit(tmp, relpath)


def load_npz(storage, relpath: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(storage.read_bytes(relpath))) as data:
        return {k: data[k] for k in data.files}


def _write_parquet(storage, relpath: str, table: pa.Table) -> None:
    tmp = storage.temp_path(relpath)
    pq.write_table(table, tmp, compression="zstd")
    storage.commit(tmp, relpath)


def phase_partition(file_index: int, uri: str, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Phase 1 (one task per input file): split rows into parts; compute MinHash band keys."""
    started = time.time()
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    dcfg = cfg["dedup"]
    table = read_input_table(uri, fetch)
    n = table.num_rows
    docs = (np.uint64(file_index) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    hashes = url_hashes(table.column("url").to_pylist())
    table = table.append_column("_doc", pa.array(docs)).append_column("_urlhash", pa.array(hashes))
    parts = part_of(hashes, int(dcfg["parts"]))
    band_keys = None
    if "minhash" in dcfg["stages"] and n:
        from .minhash import MinHashConfig, MinHasher, normalize_words

        texts = [t or "" for t in table.column("text").to_pylist()]
        # Documents without words have no shingles: they would all share one signature and "match" each
        # other, so they take no part in MinHash.
        has_words = np.fromiter((bool(normalize_words(t)) for t in texts), dtype=bool, count=n)
        band_keys = MinHasher(MinHashConfig.from_config(dcfg["minhash"])).band_keys_batch(texts)
    for part in np.unique(parts):
        rows = np.flatnonzero(parts == part)
        _write_parquet(storage, f"{WORK}/parts/p={part:05d}/f={file_index:06d}.parquet", table.take(rows))
        if band_keys is not None:
            rows = rows[has_words[rows]]
            _save_npz(storage, f"{WORK}/bands/p={part:05d}/f={file_index:06d}.npz", docs=docs[rows], keys=band_keys[rows])
    return {"uri": uri, "rows": n, "seconds": round(time.time() - started, 3)}


def candidate_edges(docs: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Star edges (first doc of a run, other doc) for every band whose key is shared by ≥ 2 documents."""
    edges = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        column = keys[order, band]
        same = column[1:] == column[:-1]
        if not same.any():
            continue
        starts = np.concatenate(([True], ~same))
        first = np.maximum.accumulate(np.where(starts, np.arange(len(column)), 0))
        members = np.flatnonzero(~starts)
        edges.append(np.stack([docs[order[first[members]]], docs[order[members]]], axis=1))
    if not edges:
        return np.empty((0, 2), dtype=np.uint64)
    return np.unique(np.concatenate(edges), axis=0)


def _band_slice(bands: int, groups: int, group: int) -> range:
    return range(group * bands // groups, (group + 1) * bands // groups)


def phase_band_edges(part: int, group: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Phase 2a (one task per part × band group): group one slice of the bands, emit candidate pairs."""
    started = time.time()
    storage = open_storage(output, FetchConfig.from_config(cfg))
    mcfg = cfg["dedup"]["minhash"]
    band_range = _band_slice(int(mcfg["bands"]), int(mcfg["band_groups"]), group)
    files = storage.list(f"{WORK}/bands/p={part:05d}", "*.npz")
    loaded = [load_npz(storage, f) for f in files]
    docs = np.concatenate([d["docs"] for d in loaded]) if loaded else np.empty(0, np.uint64)
    keys = (np.concatenate([d["keys"][:, band_range.start:band_range.stop] for d in loaded])
            if loaded else np.empty((0, len(band_range)), np.uint64))
    del loaded
    edges = candidate_edges(docs, keys)
    _save_npz(storage, f"{WORK}/edges/p={part:05d}/g={group:04d}.npz", edges=edges)
    return {"part": part, "group": group, "docs": int(len(docs)), "pairs": int(len(edges)),
            "seconds": round(time.time() - started, 3)}


def phase_minhash(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Phase 2b (one task per part): merge the band groups' pairs, connected components, survivors."""
    started = time.time()
    storage = open_storage(output, FetchConfig.from_config(cfg))
    files = storage.list(f"{WORK}/edges/p={part:05d}", "*.npz")
    parts = [load_npz(storage, f)["edges"] for f in files]
    edges = np.unique(np.concatenate(parts), axis=0) if parts and sum(len(e) for e in parts) else np.empty((0, 2), np.uint64)
    candidate_pairs = len(edges)
    mcfg = cfg["dedup"]["minhash"]
    if mcfg["jaccard_check"] and len(edges):
        from .minhash import jaccard

        texts = _texts_by_doc(storage, part, np.unique(edges))
        keep = [jaccard(texts[int(a)], texts[int(b)], int(mcfg["ngram"])) >= float(mcfg["jaccard_threshold"])
                for a, b in edges]
        edges = edges[np.asarray(keep, dtype=bool)]
    removed, clusters = duplicates_to_remove(edges)
    _save_npz(storage, f"{WORK}/minhash/p={part:05d}.npz", removed=np.sort(removed))
    return {"part": part, "candidate_pairs": int(candidate_pairs), "pairs_after_check": int(len(edges)),
            "clusters": clusters, "removed": int(len(removed)), "seconds": round(time.time() - started, 3)}


def _part_table(storage, part: int) -> pa.Table | None:
    files = storage.list(f"{WORK}/parts/p={part:05d}", "*.parquet")
    if not files:
        return None
    tables = [pq.read_table(pa.BufferReader(storage.read_bytes(f))) for f in files]
    table = pa.concat_tables(tables, promote_options="default")
    return table.sort_by("_doc")


def _texts_by_doc(storage, part: int, wanted: np.ndarray) -> dict[int, str]:
    table = _part_table(storage, part)
    docs = table.column("_doc").to_numpy()
    rows = np.flatnonzero(np.isin(docs, wanted))
    texts = table.column("text").take(pa.array(rows)).to_pylist()
    return {int(docs[r]): t or "" for r, t in zip(rows, texts)}


def phase_finish(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Phase 3 (one task per part): remove near duplicates, then exact substrings, then URL duplicates
    (in `dedup.stages` order), and write the part's output shards."""
    started = time.time()
    storage = open_storage(output, FetchConfig.from_config(cfg))
    dcfg = cfg["dedup"]
    stats: dict[str, Any] = {"part": part}
    table = _part_table(storage, part)
    if table is None:
        return {**stats, "docs_in": 0, "docs_out": 0, "stages": {}, "shards": [], "url_hashes": None}
    stats["docs_in"] = table.num_rows
    sub: dict[str, dict[str, Any]] = {}
    after_chars = _text_chars(table)
    for stage in dcfg["stages"]:
        before_docs, before_chars = table.num_rows, after_chars
        extra: dict[str, Any] = {}
        if stage == "minhash":
            removed = load_npz(storage, f"{WORK}/minhash/p={part:05d}.npz")["removed"] \
                if storage.exists(f"{WORK}/minhash/p={part:05d}.npz") else np.empty(0, np.uint64)
            table = table.filter(pa.array(~np.isin(table.column("_doc").to_numpy(), removed)))
        elif stage == "exact_substring":
            table, extra = _exact_substring(table, dcfg["exact_substring"],
                                            cfg["tokens"]["encoding"] if cfg["tokens"]["enabled"] else None)
        elif stage == "url":
            table, extra = _url_dedup(table, dcfg["url"], FetchConfig.from_config(cfg))
        else:
            raise UserError(f"unknown dedup stage '{stage}' (dedup.stages takes minhash, exact_substring, url)")
        after_chars = _text_chars(table)
        sub[stage] = {"docs_in": before_docs, "docs_out": table.num_rows, "docs_removed": before_docs - table.num_rows,
                      "chars_removed": before_chars - after_chars, **extra}
    schema = table.drop_columns(list(INTERNAL)).schema
    folder = f"{DEDUP_DIR}/part-{part:05d}"
    writer = ShardWriter(storage, folder, f"part-{part:05d}", schema, ShardLimits.from_config(cfg["output"]))
    writer.add_table(table.drop_columns(list(INTERNAL)))
    # full shards stay; a last, partly filled one goes to the tails that phase 4 merges into full shards
    shards, tail = writer.close_with_tail(f"{WORK}/tails/p={part:05d}.parquet")
    if tail is None:
        storage.delete(f"{WORK}/tails/p={part:05d}.parquet")   # from an earlier attempt
    # the kept URLs, for the seen-URL store the driver updates once every part is done
    url_hashes = f"{URLS}/p={part:05d}.npz"
    _save_npz(storage, url_hashes, hashes=table.column("_urlhash").to_numpy())
    return {**stats, "docs_out": table.num_rows, "stages": sub, "shards": shards, "tail": tail,
            "url_hashes": url_hashes, "seconds": round(time.time() - started, 3)}


def plan_tail_merges(tails: list[dict[str, Any]], limits: ShardLimits) -> list[list[dict[str, Any]]]:
    """Group the parts' tails (in part order) into bins of about one full shard each."""
    def size(entry):
        ratios = [entry["bytes"] / limits.max_bytes if limits.max_bytes else 0.0,
                  entry["tokens"] / limits.max_tokens if limits.max_tokens else 0.0,
                  entry["rows"] / limits.max_rows if limits.max_rows else 0.0]
        return max(ratios)

    bins: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    filled = 0.0
    for tail in sorted(tails, key=lambda t: t["path"]):
        if current and filled + size(tail) > 1.0:
            bins.append(current)
            current, filled = [], 0.0
        current.append(tail)
        filled += size(tail)
    if current:
        bins.append(current)
    return bins


def phase_merge_tails(index: int, tails: list[dict[str, Any]], cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Phase 4 (one task per bin): stream the bin's tails, row group by row group, into full shards."""
    started = time.time()
    storage = open_storage(output, FetchConfig.from_config(cfg))
    writer = None
    for tail in tails:
        with storage.local_copy(tail["path"]) as path:
            source = pq.ParquetFile(path)
            if writer is None:
                writer = ShardWriter(storage, f"{DEDUP_DIR}/merged", f"merged-{index:05d}", source.schema_arrow,
                                     ShardLimits.from_config(cfg["output"]))
            for group in range(source.num_row_groups):
                writer.add_table(source.read_row_group(group))
    shards = writer.close() if writer is not None else []
    return {"bin": index, "tails": len(tails), "shards": shards, "seconds": round(time.time() - started, 3)}


def _text_chars(table: pa.Table) -> int:
    """Characters of the text column, counted in Arrow (no Python strings)."""
    return int(pa.compute.sum(pa.compute.utf8_length(table.column("text"))).as_py() or 0)


def _exact_substring(table: pa.Table, section: dict[str, Any],
                     encoding: str | None = None) -> tuple[pa.Table, dict[str, Any]]:
    from .exact_substring import ExactSubstringConfig, dedup_part, split_parts

    cfg = ExactSubstringConfig.from_config(section)
    texts = [t or "" for t in table.column("text").to_pylist()]
    new_texts: list[str | None] = [None] * len(texts)
    spans = 0
    for group in split_parts([len(t.encode("utf-8")) for t in texts], cfg.max_part_bytes):
        result = dedup_part([texts[i] for i in group], cfg)
        spans += result.duplicate_spans
        for i, text in zip(group, result.texts):
            new_texts[i] = text
    keep = np.array([t is not None for t in new_texts], dtype=bool)
    index = table.column_names.index("text")
    if "token_count" in table.column_names and encoding:
        # a document with spans cut out has fewer tokens: count again (only those)
        from ..stages.tokens import count_tokens

        counts = table.column("token_count").to_pylist()
        for i, (old, new) in enumerate(zip(texts, new_texts)):
            if new is not None and new != old:
                counts[i] = count_tokens(new, encoding)
        table = table.set_column(table.column_names.index("token_count"), "token_count",
                                 pa.array(counts, table.schema.field("token_count").type))
    table = table.set_column(index, "text", pa.array([t if t is not None else "" for t in new_texts], pa.string()))
    return table.filter(pa.array(keep)), {"duplicate_spans": spans}


def _url_dedup(table: pa.Table, section: dict[str, Any], fetch: FetchConfig | None = None) -> tuple[pa.Table, dict[str, Any]]:
    hashes = table.column("_urlhash").to_numpy()
    priority = section.get("priority")
    if priority:
        if priority not in table.column_names:
            raise UserError(f"dedup.url.priority names column '{priority}', which the input does not have")
        # highest priority first, then input order; np.unique keeps the first of each URL in that order
        order = pa.compute.sort_indices(table, [(priority, "descending"), ("_doc", "ascending")]).to_numpy()
        _, first_sorted = np.unique(hashes[order], return_index=True)
        first = order[first_sorted]
    else:
        _, first = np.unique(hashes, return_index=True)   # rows are in input order: first occurrence wins
    keep = np.zeros(len(hashes), dtype=bool)
    keep[first] = True
    within = int(len(hashes) - keep.sum())
    seen = SeenUrls(section.get("seen"), fetch)
    earlier = seen.contains(hashes) & keep
    keep &= ~earlier
    return table.filter(pa.array(keep)), {"duplicates_in_run": within, "seen_in_earlier_runs": int(earlier.sum())}
