"""The dedup stage's phases: plain functions of files under the output root (no Ray here).

Deduplication is corpus-wide: whatever the split of the work, two copies meet. Each sub-stage (in
`dedup.stages` order) scans the parts, applying what the earlier sub-stages decided, and shuffles 64-bit
keyed records to buckets (`shuffle.py`); bucket tasks group equal keys and write their decisions back to
the parts; a last phase streams every part once more, applies every decision and writes the shards.

  minhash          scan: 450 band keys per document -> buckets (see `plan`); bucket: documents
                   sharing a band key -> candidate pairs (reduced to stars per bucket); [jaccard_check: two
                   hops join both texts' shingles to each pair]; connected components over the whole
                   corpus (in one task when the pairs fit its memory, else large-star/small-star rounds
                   over `parts` partitions); every member of a component but its earliest is removed.
  exact_substring  scan: a 64-bit hash of every in-document 50-token window -> buckets (parts); bucket:
                   windows whose hash occurs twice or more -> marked (remove_all: every occurrence;
                   keep_first: all but the earliest); the union of a document's marked windows is cut.
  url              scan: (normalised URL hash, priority) -> buckets; bucket: all but the first (or the
                   highest-priority) document of each URL, and URLs kept by earlier runs, are removed.

Layout under `<output>/_work/dedup/` (deleted after a successful run unless `dedup.keep_work`):
  corpus.json                              the input files, their row counts, the part count
  <stage>/records/p=P.bin                  a scan's records of part P, bucket after bucket
  minhash/cc/r=R/{ls,ss}/q=Q/from=X.npy    edges of component round R, partition Q
  minhash/check/{a,b}/p=P/from=X.(npy|npz) the Jaccard check's two hops
  <stage>/removed/p=P/from=X.npy           part-local rows removed (minhash, url)
  exact_substring/bucket-marks/p=P/from=X.npy  part-local (row << 32 | token offset) of marked windows
  exact_substring/marks/p=P.npy            the same, merged into one sorted file per part
  tails/p=P.parquet                        part P's last, partly filled shard (merged by phase_merge_tails)
Output: `<output>/dedup/part-PPPPP/part-PPPPP-NNNNN.parquet` and `<output>/dedup/merged/…`, with every input
column, listed in `<output>/dedup/.refinedweb/manifest.json`; `<output>/dedup/.refinedweb/urls/p=P.npz`: the kept
URLs' hashes.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import UserError
from ..io.manifest import META
from ..io.parquet import ShardLimits, ShardWriter, conform
from ..io.remote import FetchConfig
from ..io.storage import open_storage
from .components import connected_components, large_star, small_star, star_roots
from .corpus import Corpus, iter_part, load_corpus
from .shuffle import BucketWriter, load_arrays, mix64, passes_for, read_bucket, save_array, save_npz, task_budget_bytes
from .urls import SeenUrls, url_hashes

DEDUP_DIR = "dedup"
WORK = f"_work/{DEDUP_DIR}"
URLS = f"{DEDUP_DIR}/{META}/urls"  # kept URL hashes per part (outside _work, which may be deleted at the end)
CORPUS = f"{WORK}/corpus.json"
SUB_STAGES = ("minhash", "exact_substring", "url")

BAND_RECORD = np.dtype([("key", "<u8"), ("row", "<u4")])
WINDOW_RECORD = np.dtype([("key", "<u8"), ("row", "<u4"), ("offset", "<u4")])
_LOW32 = np.uint64(0xFFFFFFFF)


def _open(cfg: dict[str, Any], output: str) -> tuple[Any, FetchConfig, Corpus]:
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    return storage, fetch, load_corpus(storage, CORPUS)


def _stages_before(cfg: dict[str, Any], stage: str) -> list[str]:
    stages = list(cfg["dedup"]["stages"])
    return stages[:stages.index(stage)]


def _timed(started: float, **values: Any) -> dict[str, Any]:
    return {**values, "seconds": round(time.time() - started, 3)}


def _to_parts(storage, corpus: Corpus, folder: str, name: str, ordinals: np.ndarray) -> None:
    """Save the sorted part-local rows of `ordinals` under `<folder>/p=P/from=<name>.npy`, a file per part."""
    ordinals = np.sort(np.asarray(ordinals, dtype=np.int64))
    parts = corpus.part_of(ordinals)
    starts = corpus.part_starts
    for p in np.unique(parts):
        rows = (ordinals[parts == p] - starts[p]).astype(np.uint32)
        save_array(storage, f"{folder}/p={p:05d}/from={name}.npy", rows)


# ------------------------------------------------------------------------------- applying decisions

class Decisions:
    """What some sub-stages decided for one part, applied to its batches in stage order (a context manager:
    mark files are memory-mapped, not loaded)."""

    def __init__(self, storage, cfg: dict[str, Any], part: int, stages: list[str]):
        self.storage, self.cfg, self.part, self.stages = storage, cfg, part, stages
        self.stack = ExitStack()
        self.removed: dict[str, np.ndarray] = {}
        self.marks: list[np.ndarray] = []
        self.stats = {s: {"docs_in": 0, "docs_out": 0, "chars_removed": 0} for s in stages}
        for stage in stages:
            if stage == "exact_substring":
                self.stats[stage]["duplicate_spans"] = 0
                relpath = f"{WORK}/exact_substring/marks/p={part:05d}.npy"
                if storage.exists(relpath):
                    path = self.stack.enter_context(storage.local_copy(relpath))
                    self.marks.append(np.load(path, mmap_mode="r"))
            else:
                arrays = load_arrays(storage, f"{WORK}/{stage}/removed/p={part:05d}")
                self.removed[stage] = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.uint32)

    def __enter__(self) -> "Decisions":
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def _marks_of(self, rows: np.ndarray) -> np.ndarray:
        lo = np.uint64(int(rows.min())) << np.uint64(32)
        hi = np.uint64(int(rows.max()) + 1) << np.uint64(32)
        found = [np.asarray(m[np.searchsorted(m, lo):np.searchsorted(m, hi)]) for m in self.marks]
        return np.sort(np.concatenate(found)) if found else np.empty(0, np.uint64)

    def apply(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table]:
        """The batch's surviving rows and their table (text edited where windows were cut)."""
        ecfg = self.cfg["dedup"]["exact_substring"]
        for stage in self.stages:
            st = self.stats[stage]
            st["docs_in"] += len(rows)
            before = _text_chars(table)
            if stage == "exact_substring":
                rows, table, spans = self._cut(rows, table, int(ecfg["min_tokens"]), int(ecfg["min_words"]))
                st["duplicate_spans"] += spans
            else:
                removed = self.removed[stage]
                keep = ~np.isin(rows, removed, assume_unique=False) if len(removed) else np.ones(len(rows), bool)
                rows, table = rows[keep], table.filter(pa.array(keep))
            st["docs_out"] += len(rows)
            st["chars_removed"] += before - _text_chars(table)
        return rows, table

    def _cut(self, rows: np.ndarray, table: pa.Table, k: int, min_words: int) -> tuple[np.ndarray, pa.Table, int]:
        if not len(rows) or not self.marks:
            return rows, table, 0
        marks = self._marks_of(rows)
        if not len(marks):
            return rows, table, 0
        from .exact_substring import cut_windows

        mark_rows = (marks >> np.uint64(32)).astype(np.int64)
        offsets = (marks & _LOW32).astype(np.int64)
        edited = np.unique(mark_rows)
        position = np.searchsorted(rows, edited)
        texts = table.column("text").to_pylist()
        keep = np.ones(len(rows), dtype=bool)
        spans = 0
        changed = False
        bounds = np.searchsorted(mark_rows, np.append(edited, edited[-1] + 1))
        for i, (row, pos) in enumerate(zip(edited.tolist(), position.tolist())):
            if pos >= len(rows) or int(rows[pos]) != row:
                continue                  # not in this batch any more
            new, _, n = cut_windows(texts[pos] or "", offsets[bounds[i]:bounds[i + 1]], k, min_words)
            spans += n
            if new is None:
                keep[pos] = False
            elif new != texts[pos]:
                texts[pos] = new
                changed = True
        if changed:
            table = _replace_text(table, texts, self.cfg)
        return rows[keep], table.filter(pa.array(keep)), spans


def _replace_text(table: pa.Table, texts: list[str | None], cfg: dict[str, Any]) -> pa.Table:
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


def _text_chars(table: pa.Table) -> int:
    """Characters of the text column, counted in Arrow (no Python strings)."""
    if not table.num_rows or "text" not in table.column_names:
        return 0
    return int(pc.sum(pc.utf8_length(table.column("text"))).as_py() or 0)


# ------------------------------------------------------------------------------------------- minhash

def _scan(part: int, cfg: dict[str, Any], output: str, stage: str, dtype: np.dtype, columns: list[str],
          produce) -> list[int]:
    """Stream the part as the earlier sub-stages left it; `produce(batches)` yields record arrays, which go
    to the stage's buckets. Returns the records per bucket (they locate each bucket in the part's file)."""
    storage, fetch, corpus = _open(cfg, output)
    writer = BucketWriter(storage, f"{WORK}/{stage}/records", part, corpus.buckets[stage], dtype)
    try:
        with Decisions(storage, cfg, part, _stages_before(cfg, stage)) as decisions:
            batches = (decisions.apply(rows, table) for rows, table in iter_part(corpus, part, fetch, columns))
            for records in produce(batches):
                writer.add(records)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def scan_minhash(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Band keys of the part's documents (those with words), to buckets by key (the per-band seeds make the
    450 bands one key space)."""
    from .minhash import MinHashConfig, MinHasher, normalize_words

    started = time.time()
    hasher = MinHasher(MinHashConfig.from_config(cfg["dedup"]["minhash"]))
    docs = 0

    def produce(batches):
        nonlocal docs
        for rows, table in batches:
            texts = [t or "" for t in table.column("text").to_pylist()]
            # Documents without words have no shingles: they would all share one signature and "match"
            # each other, so they take no part in MinHash.
            with_words = np.fromiter((bool(normalize_words(t)) for t in texts), dtype=bool, count=len(texts))
            if with_words.any():
                keys = hasher.band_keys_batch([t for t, w in zip(texts, with_words) if w])
                records = np.empty(keys.size, dtype=BAND_RECORD)
                records["key"] = keys.reshape(-1)
                records["row"] = np.repeat(rows[with_words], hasher.cfg.bands)
                docs += len(keys)
                yield records

    counts = _scan(part, cfg, output, "minhash", BAND_RECORD, ["text"], produce)
    return _timed(started, part=part, docs=docs, records=counts)


def minhash_bucket(bucket: int, passes: int, segments: list, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Documents sharing a band key are candidates: star pairs (earliest, other) per key. Without the
    Jaccard check the bucket's pairs are reduced to their components (a star per component) and sent to
    the component rounds; with it, sent to the check's first hop."""
    started = time.time()
    storage, _, corpus = _open(cfg, output)
    edges = []
    for records, ordinals in read_bucket(storage, f"{WORK}/minhash/records", segments, BAND_RECORD,
                                         corpus.part_starts, passes):
        edges.append(_star_pairs(records["key"], ordinals.view(np.uint64)))
        del records, ordinals
    edges = np.unique(np.concatenate(edges), axis=0) if edges else np.empty((0, 2), np.uint64)
    pairs = len(edges)
    if cfg["dedup"]["minhash"]["jaccard_check"]:
        _edges_to_parts(storage, corpus, f"{WORK}/minhash/check/a", f"b{bucket:05d}", edges)
    else:
        edges = _reduce_to_stars(edges)
        _to_round(storage, corpus, 0, "ls", f"b{bucket:05d}", edges)
    return _timed(started, bucket=bucket, passes=passes, pairs=pairs, edges=int(len(edges)))


def _star_pairs(keys: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """(first, other) for every run of equal keys, in ordinal order within the run."""
    if not len(keys):
        return np.empty((0, 2), np.uint64)
    order = np.lexsort((ordinals, keys))
    keys = keys[order]
    same = keys[1:] == keys[:-1]
    del keys
    if not same.any():
        return np.empty((0, 2), np.uint64)
    ordinals = ordinals[order]
    del order
    first = np.arange(len(ordinals))
    first[1:][same] = 0                   # run starts keep their index, members take their run's start
    np.maximum.accumulate(first, out=first)
    members = np.flatnonzero(same) + 1
    return np.stack([ordinals[first[members]], ordinals[members]], axis=1)


def _reduce_to_stars(edges: np.ndarray) -> np.ndarray:
    """The same components with fewer edges: (node, its component's smallest node) for every other node."""
    nodes, roots = connected_components(edges)
    other = nodes != roots
    return np.stack([nodes[other], roots[other]], axis=1)


def _cc_partition(nodes: np.ndarray, partitions: int) -> np.ndarray:
    return ((mix64(nodes) >> np.uint64(32)) % np.uint64(partitions)).astype(np.int64)


def _route(storage, folder: str, name: str, pairs: np.ndarray, partitions: int) -> None:
    """Save directed rows (u, v) under `<folder>/q=Q/from=<name>.npy` by the partition of u."""
    target = _cc_partition(pairs[:, 0], partitions) if len(pairs) else np.empty(0, np.int64)
    for q in np.unique(target):
        save_array(storage, f"{folder}/q={q:05d}/from={name}.npy", pairs[target == q])


def _to_round(storage, corpus: Corpus, round_: int, step: str, name: str, edges: np.ndarray) -> None:
    edges = np.asarray(edges, dtype=np.uint64).reshape(-1, 2)
    if step == "ls":              # large-star needs every edge at both of its ends
        edges = np.concatenate([edges, edges[:, ::-1]])
    _route(storage, f"{WORK}/minhash/cc/r={round_:03d}/{step}", name, edges, corpus.parts)


def _edges_to_parts(storage, corpus: Corpus, folder: str, name: str, edges: np.ndarray) -> None:
    """Save pairs under `<folder>/p=P/from=<name>.npy` by the part of their first (earlier) document."""
    parts = corpus.part_of(edges[:, 0].astype(np.int64)) if len(edges) else np.empty(0, np.int64)
    for p in np.unique(parts):
        save_array(storage, f"{folder}/p={p:05d}/from={name}.npy", edges[parts == p])


def _shingles_of(storage, cfg, corpus, fetch, part: int, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """Sorted unique 5-gram hashes of the part's documents at part-local rows `wanted`, texts as the
    stages before minhash left them."""
    from .minhash import shingle_hashes

    ngram = int(cfg["dedup"]["minhash"]["ngram"])
    out: dict[int, np.ndarray] = {}
    with Decisions(storage, cfg, part, _stages_before(cfg, "minhash")) as decisions:
        for rows, table in iter_part(corpus, part, fetch, ["text"]):
            if not np.isin(rows, wanted).any():
                continue
            rows, table = decisions.apply(rows, table)
            hit = np.flatnonzero(np.isin(rows, wanted))
            texts = table.column("text").take(pa.array(hit)).to_pylist()
            for r, text in zip(rows[hit].tolist(), texts):
                out[r] = shingle_hashes(text or "", ngram)
    return out


def check_hop_a(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Jaccard check, first hop (pairs whose earlier document is in this part): attach that document's
    shingles and send each pair to the part of its other document."""
    started = time.time()
    storage, fetch, corpus = _open(cfg, output)
    arrays = load_arrays(storage, f"{WORK}/minhash/check/a/p={part:05d}")
    edges = np.unique(np.concatenate(arrays), axis=0) if arrays else np.empty((0, 2), np.uint64)
    base = int(corpus.part_starts[part])
    shingles = _shingles_of(storage, cfg, corpus, fetch, part,
                            (np.unique(edges[:, 0]).astype(np.int64) - base).astype(np.uint32))
    target = corpus.part_of(edges[:, 1].astype(np.int64)) if len(edges) else np.empty(0, np.int64)
    for q in np.unique(target):
        mine = edges[target == q]
        docs = np.unique(mine[:, 0])
        sets = [shingles.get(int(d) - base, np.empty(0, np.uint64)) for d in docs]
        offsets = np.zeros(len(sets) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in sets], out=offsets[1:])
        save_npz(storage, f"{WORK}/minhash/check/b/p={q:05d}/from=p{part:05d}.npz", edges=mine, docs=docs,
                 offsets=offsets, hashes=np.concatenate(sets) if sets else np.empty(0, np.uint64))
    return _timed(started, part=part, pairs=int(len(edges)))


def check_hop_b(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Jaccard check, second hop (pairs whose later document is in this part): exact 5-gram Jaccard of the
    two shingle sets; pairs at or above `jaccard_threshold` go on to the component rounds."""
    started = time.time()
    storage, fetch, corpus = _open(cfg, output)
    threshold = float(cfg["dedup"]["minhash"]["jaccard_threshold"])
    base = int(corpus.part_starts[part])
    loaded = []
    for relpath in storage.list(f"{WORK}/minhash/check/b/p={part:05d}", "*.npz"):
        with storage.local_copy(relpath) as path, np.load(path) as data:
            loaded.append({k: data[k] for k in data.files})
    edges = np.concatenate([d["edges"] for d in loaded]) if loaded else np.empty((0, 2), np.uint64)
    mine = _shingles_of(storage, cfg, corpus, fetch, part,
                        (np.unique(edges[:, 1]).astype(np.int64) - base).astype(np.uint32))
    kept = []
    for d in loaded:
        where = {int(doc): i for i, doc in enumerate(d["docs"])}
        for a, b in d["edges"]:
            i = where[int(a)]
            sa = d["hashes"][d["offsets"][i]:d["offsets"][i + 1]]
            sb = mine.get(int(b) - base, np.empty(0, np.uint64))
            union = len(np.union1d(sa, sb))
            if union and len(np.intersect1d(sa, sb, assume_unique=True)) / union >= threshold:
                kept.append((a, b))
    kept = np.array(kept, dtype=np.uint64).reshape(-1, 2)
    _to_round(storage, corpus, 0, "ls", f"p{part:05d}", _reduce_to_stars(kept))
    return _timed(started, part=part, candidate_pairs=int(len(edges)), pairs_after_check=int(len(kept)))


CC_BYTES_PER_PAIR = 120     # a round's pairs, sorted and grouped, with their outputs


def _round_input(storage, cfg: dict[str, Any], round_: int, step: str, partition: int) -> np.ndarray:
    arrays = load_arrays(storage, f"{WORK}/minhash/cc/r={round_:03d}/{step}/q={partition:05d}")
    pairs = np.concatenate(arrays) if arrays else np.empty((0, 2), np.uint64)
    budget = max(task_budget_bytes(cfg), 32 << 20)
    if len(pairs) * CC_BYTES_PER_PAIR > budget:
        raise UserError(f"component round {round_}, partition {partition}: {len(pairs):,} pairs need "
                        f"~{len(pairs) * CC_BYTES_PER_PAIR >> 20} MB, above the dedup task memory "
                        f"({budget >> 20} MB): raise dedup.parts (or dedup.task_memory_mb)")
    return pairs[pairs[:, 0] != pairs[:, 1]]


def cc_large_star(round_: int, partition: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    started = time.time()
    storage, _, corpus = _open(cfg, output)
    out, (count, checksum) = large_star(_round_input(storage, cfg, round_, "ls", partition))
    _to_round(storage, corpus, round_, "ss", f"q{partition:05d}", out)
    return _timed(started, edges=count, checksum=checksum)


def cc_small_star(round_: int, partition: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    started = time.time()
    storage, _, corpus = _open(cfg, output)
    out, (count, checksum) = small_star(_round_input(storage, cfg, round_, "ss", partition))
    _to_round(storage, corpus, round_ + 1, "ls", f"q{partition:05d}", out)
    return _timed(started, edges=count, checksum=checksum)


def cc_extract(round_: int, partition: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """After convergence every component is a star around its earliest document: the others go."""
    started = time.time()
    storage, _, corpus = _open(cfg, output)
    removed, roots = star_roots(_round_input(storage, cfg, round_, "ls", partition))
    _to_parts(storage, corpus, f"{WORK}/minhash/removed", f"q{partition:05d}", removed)
    return _timed(started, removed=int(len(removed)), clusters=roots)


def cc_in_memory(cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """All the pairs fit one task: union-find on them at once (same result as the rounds)."""
    started = time.time()
    storage, _, corpus = _open(cfg, output)
    arrays = [a for q in storage.list_folders(f"{WORK}/minhash/cc/r=000/ls")
              for a in load_arrays(storage, q)]
    pairs = np.concatenate(arrays) if arrays else np.empty((0, 2), np.uint64)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    nodes, roots = connected_components(pairs)
    removed = nodes[nodes != roots]
    _to_parts(storage, corpus, f"{WORK}/minhash/removed", "memory", removed)
    return _timed(started, removed=int(len(removed)), clusters=int(len(np.unique(roots))))


# ----------------------------------------------------------------------------------- exact substrings

def scan_exact(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Hashes of every in-document `min_tokens`-token window, to buckets by hash. Text is tokenised in chunks
    of at most `exact_substring.max_part_bytes`."""
    from .exact_substring import ExactSubstringConfig, tokenize, window_records

    started = time.time()
    ecfg = ExactSubstringConfig.from_config(cfg["dedup"]["exact_substring"])
    tokens = 0

    def records_of(rows: list[int], texts: list[str]) -> np.ndarray:
        nonlocal tokens
        arrays = tokenize(texts)
        tokens += sum(len(a) for a in arrays)
        hashes, docs, offsets = window_records(arrays, ecfg.min_tokens)
        if np.any(offsets >= 1 << 32):
            raise UserError("a document has more than 2**32 tokens; exact-substring dedup cannot index it")
        records = np.empty(len(hashes), dtype=WINDOW_RECORD)
        records["key"], records["offset"] = hashes, offsets
        records["row"] = np.asarray(rows, dtype=np.uint32)[docs]
        return records

    def produce(batches):
        rows: list[int] = []
        texts: list[str] = []
        size = 0
        for batch_rows, table in batches:
            sizes = pc.fill_null(pc.binary_length(table.column("text")), 0).to_numpy(zero_copy_only=False)
            for row, text, nbytes in zip(batch_rows.tolist(), table.column("text").to_pylist(), sizes.tolist()):
                if size and size + nbytes > ecfg.max_part_bytes:
                    yield records_of(rows, texts)
                    rows, texts, size = [], [], 0
                rows.append(row)
                texts.append(text or "")
                size += nbytes
        if texts:
            yield records_of(rows, texts)

    counts = _scan(part, cfg, output, "exact_substring", WINDOW_RECORD, ["text"], produce)
    return _timed(started, part=part, tokens=tokens, records=counts)


def exact_bucket(bucket: int, passes: int, segments: list, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Windows whose hash occurs more than once: every occurrence (remove_all) or all but the earliest
    (keep_first) is marked, and the marks are sent to the parts."""
    started = time.time()
    storage, _, corpus = _open(cfg, output)
    keep_first = cfg["dedup"]["exact_substring"]["policy"] == "keep_first"
    starts = corpus.part_starts
    windows = repeated = marked = 0
    for k, (records, ordinals) in enumerate(read_bucket(storage, f"{WORK}/exact_substring/records", segments,
                                                        WINDOW_RECORD, starts, passes)):
        windows += len(records)
        if not len(records):
            continue
        order = np.lexsort((records["offset"], ordinals, records["key"]))
        keys = records["key"][order]
        dup = np.zeros(len(keys), dtype=bool)
        same = keys[1:] == keys[:-1]
        dup[1:] |= same
        dup[:-1] |= same
        repeated += int(np.count_nonzero(dup & np.concatenate(([True], ~same))))
        if keep_first:
            dup &= np.concatenate(([False], same))     # the earliest of each group stays
        chosen = order[dup]
        marked += len(chosen)
        mark_ordinals = ordinals[chosen]
        encoded_parts = corpus.part_of(mark_ordinals)
        encoded = ((mark_ordinals - starts[encoded_parts]).astype(np.uint64) << np.uint64(32)) \
            | records["offset"][chosen].astype(np.uint64)
        del records, ordinals, order, keys
        for p in np.unique(encoded_parts):
            save_array(storage, f"{WORK}/exact_substring/bucket-marks/p={p:05d}/from=b{bucket:05d}-{k:03d}.npy",
                       np.sort(encoded[encoded_parts == p]))
    return _timed(started, bucket=bucket, passes=passes, windows=windows, repeated_windows=repeated,
                  marked_windows=marked)


def merge_marks(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """The part's marks from every bucket (a sorted file each) as one sorted file, so that applying them
    maps one file. Merged in row ranges that fit the task budget; one input file open at a time."""
    started = time.time()
    storage, _, corpus = _open(cfg, output)
    files = storage.list(f"{WORK}/exact_substring/bucket-marks/p={part:05d}", "*.npy")
    counts = []
    for relpath in files:
        with storage.local_copy(relpath) as path:
            counts.append(int(np.load(path, mmap_mode="r").shape[0]))
    total = sum(counts)
    relpath = f"{WORK}/exact_substring/marks/p={part:05d}.npy"
    tmp = storage.temp_path(relpath)
    try:
        merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint64, shape=(total,))
        rows = int(corpus.part_starts[part + 1] - corpus.part_starts[part])
        passes = passes_for(total, 24, task_budget_bytes(cfg))
        bounds = [np.uint64(rows * k // passes) << np.uint64(32) for k in range(passes)] + [np.uint64(0xFFFFFFFFFFFFFFFF)]
        filled = 0
        for lo, hi in zip(bounds, bounds[1:]):
            chunk = []
            for f in files:
                with storage.local_copy(f) as path:
                    marks = np.load(path, mmap_mode="r")
                    chunk.append(np.array(marks[np.searchsorted(marks, lo):np.searchsorted(marks, hi)]))
                    del marks
            chunk = np.sort(np.concatenate(chunk)) if chunk else np.empty(0, np.uint64)
            merged[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        merged.flush()
        del merged
        assert filled == total
        storage.commit(tmp, relpath)
    except BaseException:
        storage.discard(tmp)
        raise
    return _timed(started, part=part, marks=total, passes=passes)


# ------------------------------------------------------------------------------------------------ url

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
    text = ["text"] if "exact_substring" in _stages_before(cfg, "url") else []
    counts = _scan(part, cfg, output, "url", dtype, [*text, "url"] + ([priority] if priority else []), produce)
    return _timed(started, part=part, docs=docs, records=counts)


def _arrow_type(name: str | None) -> pa.DataType | None:
    if name is None:
        return None
    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(name))).field(0).type


def url_bucket(bucket: int, passes: int, segments: list, priority_type: str | None, cfg: dict[str, Any],
               output: str) -> dict[str, Any]:
    """One document per normalised URL: the highest priority (else the earliest); and none whose URL an
    earlier run kept (`dedup.url.seen`)."""
    started = time.time()
    storage, fetch, corpus = _open(cfg, output)
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
        _to_parts(storage, corpus, f"{WORK}/url/removed", f"b{bucket:05d}-{k:03d}", removed)
    return _timed(started, bucket=bucket, passes=passes, duplicates_in_run=within, seen_in_earlier_runs=earlier)


# -------------------------------------------------------------------------------------------- output

def finish_part(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Stream the part, apply every sub-stage's decisions in order, write full shards (a last, partly
    filled one goes to the tails) and the kept URLs' hashes."""
    started = time.time()
    storage, fetch, corpus = _open(cfg, output)
    schema = corpus.schema
    writer = ShardWriter(storage, f"{DEDUP_DIR}/part-{part:05d}", f"part-{part:05d}", schema,
                         ShardLimits.from_config(cfg["output"]))
    kept_urls = []
    with Decisions(storage, cfg, part, list(cfg["dedup"]["stages"])) as decisions:
        docs_in = docs_out = 0
        for rows, table in iter_part(corpus, part, fetch):
            docs_in += len(rows)
            rows, table = decisions.apply(rows, table)
            docs_out += len(rows)
            writer.add_table(conform(table, schema))
            kept_urls.append(url_hashes(table.column("url").to_pylist()))
        stats = decisions.stats
    tail_path = f"{WORK}/tails/p={part:05d}.parquet"
    shards, tail = writer.close_with_tail(tail_path)
    if tail is None:
        storage.delete(tail_path)      # from an earlier attempt
    urls = f"{URLS}/p={part:05d}.npz"
    save_npz(storage, urls, hashes=np.concatenate(kept_urls) if kept_urls else np.empty(0, np.uint64))
    return _timed(started, part=part, docs_in=docs_in, docs_out=docs_out, stages=stats, shards=shards,
                  tail=tail, url_hashes=urls)


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


def merge_tails(index: int, tails: list[dict[str, Any]], cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Stream a bin of tails, row group by row group, into full shards."""
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
    return _timed(started, bin=index, tails=len(tails), shards=shards)


def load_npz(storage, relpath: str) -> dict[str, np.ndarray]:
    with storage.local_copy(relpath) as path, np.load(path) as data:
        return {k: data[k] for k in data.files}
