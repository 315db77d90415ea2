"""MinHash near-duplicate removal (RW §3.3, Table 10): its phases (plain functions, each a task) and the
order they run in (`run`, scheduled through the run-units helper).

scan: 450 band keys per document -> buckets; bucket: documents sharing a band key -> candidate pairs
(reduced to stars per bucket); [jaccard_check: two hops join both texts' shingles to each pair]; connected
components over the whole corpus (in one task when the pairs fit its memory, else large-star/small-star
rounds over `parts` partitions); every member of a component but its earliest is removed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import UserError
from ..corpus import Corpus, iter_part
from ..decisions import COUNT, CountedRows, Decisions, to_parts
from ..kernels.components import component_sizes, connected_components, large_star, small_star, star_roots
from ..plan import WORK, DedupRun, bucket_stats, bucket_units, methods_before, open_work, records_total, timed
from ..scan import scan_part
from ..shuffle import bucket_segments, load_arrays, mix64, read_bucket, save_array, save_npz, task_budget_bytes

NAME = "minhash"
VERSION = 1                # the resume fingerprint covers it: bump it when what the method removes changes
BAND_RECORD = np.dtype([("key", "<u8"), ("row", "<u4")])
# peak bytes per record while a bucket is grouped (record, ordinal, sort order and its temporaries, sorted
# copies), from the 2M-document benchmark's worker peaks
BUCKET_BYTES = 96
CC_BYTES_PER_EDGE = 160      # union-find over all pairs at once: both ends, unique, inverse, parents
MAX_CC_ROUNDS = 200


def planned_records(cfg: dict[str, Any], corpus: Corpus) -> int:
    return corpus.documents * int(cfg["dedup"]["minhash"]["bands"])


def min_buckets(cfg: dict[str, Any], parts: int) -> int:
    return parts * int(cfg["dedup"]["minhash"]["band_groups"])


COLUMN = "duplicate_count"      # the kept member of a cluster: the cluster's size (FineWeb-2's rehydration)


def decision(storage, cfg: dict[str, Any], part: int, stack) -> CountedRows:
    """Every member of a near-duplicate cluster but its earliest leaves; the earliest gets the cluster's size as
    `duplicate_count` (1 for a document in no cluster), so that data can be re-weighted at mixing time."""
    return CountedRows(storage, NAME, part, COLUMN)


def output_columns(cfg: dict[str, Any]) -> dict[str, pa.DataType]:
    """The column this method adds to every output row."""
    return {COLUMN: pa.int32()}


def _counts_to_parts(storage, corpus: Corpus, name: str, roots: np.ndarray, sizes: np.ndarray) -> None:
    """The cluster size of each root (the kept member), under `<work>/minhash/counts/p=P/from=<name>.npy`."""
    roots = np.asarray(roots, dtype=np.int64)
    parts = corpus.part_of(roots)
    for p in np.unique(parts).tolist():
        mine = parts == p
        records = np.empty(int(mine.sum()), COUNT)
        records["row"] = (roots[mine] - corpus.part_starts[p]).astype(np.uint32)
        records["count"] = np.asarray(sizes)[mine]
        save_array(storage, f"{WORK}/{NAME}/counts/p={p:05d}/from={name}.npy", records)


def scan_minhash(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Band keys of the part's documents (those with words), to buckets by key (the per-band seeds make the
    450 bands one key space)."""
    from ..kernels.minhash import MinHashConfig, MinHasher, normalize_words  # numba: only the tasks that hash load it

    started = time.time()
    hasher = MinHasher(MinHashConfig.from_config(cfg["dedup"]["minhash"]))
    docs = no_words = 0

    def produce(batches):
        nonlocal docs, no_words
        for rows, table in batches:
            texts = [t or "" for t in table.column("text").to_pylist()]
            # Documents without words (null or empty text too) have no shingles: they would all share one
            # signature and "match" each other, so they take no part in MinHash (counted as `no_words`).
            with_words = np.fromiter((bool(normalize_words(t)) for t in texts), dtype=bool, count=len(texts))
            no_words += len(texts) - int(with_words.sum())
            if with_words.any():
                keys = hasher.band_keys_batch([t for t, w in zip(texts, with_words) if w])
                records = np.empty(keys.size, dtype=BAND_RECORD)
                records["key"] = keys.reshape(-1)
                records["row"] = np.repeat(rows[with_words], hasher.cfg.bands)
                docs += len(keys)
                yield records

    counts = scan_part(part, cfg, output, "minhash", BAND_RECORD, ["text"], produce)
    return timed(started, part=part, docs=docs, no_words=no_words, records=counts)


def minhash_bucket(bucket: int, passes: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Documents sharing a band key are candidates: star pairs (earliest, other) per key. Without the
    Jaccard check the bucket's pairs are reduced to their components (a star per component) and sent to
    the component rounds; with it, sent to the check's first hop."""
    started = time.time()
    storage, _, corpus = open_work(cfg, output)
    folder = f"{WORK}/minhash/records"
    edges = []
    for records, ordinals in read_bucket(storage, folder, bucket_segments(storage, folder, bucket, corpus.parts),
                                         BAND_RECORD, corpus.part_starts, passes):
        edges.append(_star_pairs(records["key"], ordinals.view(np.uint64)))
        del records, ordinals
    edges = np.unique(np.concatenate(edges), axis=0) if edges else np.empty((0, 2), np.uint64)
    pairs = len(edges)
    if cfg["dedup"]["minhash"]["jaccard_check"]:
        _pairs_to_parts(storage, corpus, f"{WORK}/minhash/check/a", f"b{bucket:05d}", edges)
    else:
        edges = _reduce_to_stars(edges)
        _to_round(storage, corpus, 0, "ls", f"b{bucket:05d}", edges)
    return timed(started, bucket=bucket, passes=passes, pairs=pairs, edges=int(len(edges)))


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


def _pairs_to_parts(storage, corpus: Corpus, folder: str, name: str, edges: np.ndarray) -> None:
    """Save pairs under `<folder>/p=P/from=<name>.npy` by the part of their first (earlier) document."""
    parts = corpus.part_of(edges[:, 0].astype(np.int64)) if len(edges) else np.empty(0, np.int64)
    for p in np.unique(parts):
        save_array(storage, f"{folder}/p={p:05d}/from={name}.npy", edges[parts == p])


def _shingles_of(storage, cfg, corpus, fetch, part: int, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """Sorted unique 5-gram hashes of the part's documents at part-local rows `wanted`, texts as the
    stages before minhash left them."""
    from ..kernels.minhash import shingle_hashes

    ngram = int(cfg["dedup"]["minhash"]["ngram"])
    out: dict[int, np.ndarray] = {}
    with Decisions(storage, cfg, part, methods_before(cfg, "minhash")) as decisions:
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
    storage, fetch, corpus = open_work(cfg, output)
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
    return timed(started, part=part, pairs=int(len(edges)))


def check_hop_b(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Jaccard check, second hop (pairs whose later document is in this part): exact 5-gram Jaccard of the
    two shingle sets; pairs at or above `jaccard_threshold` go on to the component rounds."""
    started = time.time()
    storage, fetch, corpus = open_work(cfg, output)
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
    return timed(started, part=part, candidate_pairs=int(len(edges)), pairs_after_check=int(len(kept)))


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
    storage, _, corpus = open_work(cfg, output)
    out, (count, checksum) = large_star(_round_input(storage, cfg, round_, "ls", partition))
    _to_round(storage, corpus, round_, "ss", f"q{partition:05d}", out)
    return timed(started, edges=count, checksum=checksum)


def cc_small_star(round_: int, partition: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    started = time.time()
    storage, _, corpus = open_work(cfg, output)
    out, (count, checksum) = small_star(_round_input(storage, cfg, round_, "ss", partition))
    _to_round(storage, corpus, round_ + 1, "ls", f"q{partition:05d}", out)
    return timed(started, edges=count, checksum=checksum)


def cc_extract(round_: int, partition: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """After convergence every component is a star around its earliest document: the others go."""
    started = time.time()
    storage, _, corpus = open_work(cfg, output)
    removed, roots, sizes = star_roots(_round_input(storage, cfg, round_, "ls", partition))
    to_parts(storage, corpus, f"{WORK}/minhash/removed", f"q{partition:05d}", removed)
    _counts_to_parts(storage, corpus, f"q{partition:05d}", roots, sizes)
    return timed(started, removed=int(len(removed)), clusters=int(len(roots)))


def cc_in_memory(cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """All the pairs fit one task: union-find on them at once (same result as the rounds)."""
    started = time.time()
    storage, _, corpus = open_work(cfg, output)
    arrays = [a for q in storage.list_folders(f"{WORK}/minhash/cc/r=000/ls")
              for a in load_arrays(storage, q)]
    pairs = np.concatenate(arrays) if arrays else np.empty((0, 2), np.uint64)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    nodes, roots = connected_components(pairs)
    removed = nodes[nodes != roots]
    to_parts(storage, corpus, f"{WORK}/minhash/removed", "memory", removed)
    clusters, sizes = component_sizes(nodes, roots)
    _counts_to_parts(storage, corpus, "memory", clusters, sizes)
    return timed(started, removed=int(len(removed)), clusters=int(len(clusters)))


def run(ctx: DedupRun) -> dict[str, Any]:
    """Scans, buckets, [the Jaccard check's hops], connected components: the rows to remove, per part."""
    t0 = time.time()
    units, cfg, uri, parts, budget, part_keys = ctx.units, ctx.cfg, ctx.uri, ctx.parts, ctx.budget, ctx.part_keys
    mcfg = cfg["dedup"]["minhash"]
    scans = units.run("minhash-scan", scan_minhash, {k: (p, cfg, uri) for p, k in part_keys.items()})
    planned = bucket_units(ctx, NAME, "minhash-bucket", scans, BUCKET_BYTES)
    buckets = units.run("minhash-bucket", minhash_bucket, {k: (b, n, cfg, uri) for k, (b, n) in planned.items()})
    out: dict[str, Any] = {"band_keys": records_total(scans),
                           "no_words": sum(s.get("no_words", 0) for s in scans),
                           "bucket_pairs": sum(b["pairs"] for b in buckets), **bucket_stats(buckets)}
    edges = sum(b["edges"] for b in buckets)
    if mcfg["jaccard_check"]:
        units.run("check-a", check_hop_a, {k: (p, cfg, uri) for p, k in part_keys.items()})
        checked = units.run("check-b", check_hop_b, {k: (p, cfg, uri) for p, k in part_keys.items()})
        out["candidate_pairs"] = sum(c["candidate_pairs"] for c in checked)
        out["pairs_after_check"] = edges = sum(c["pairs_after_check"] for c in checked)
    # in one task or in rounds: a resumed run goes on the way its first attempt chose (the budget may differ)
    in_memory = units.started("cc-memory-") or (not units.started("cc-r=") and edges * CC_BYTES_PER_EDGE <= budget)
    if in_memory:
        result = units.run("cc-memory", cc_in_memory, {"all": (cfg, uri)})[0]
        out.update(components="in_memory", clusters=result["clusters"], removed=result["removed"])
    else:
        round_, previous = 0, None
        while True:
            if round_ >= MAX_CC_ROUNDS:
                raise RuntimeError(f"connected components did not converge in {MAX_CC_ROUNDS} rounds")
            keys = {f"q={q:05d}": (round_, q, cfg, uri) for q in range(parts)}
            large = _checksum(units.run(f"cc-r={round_:03d}-ls", cc_large_star, keys))
            small = _checksum(units.run(f"cc-r={round_:03d}-ss", cc_small_star, keys))
            if previous == large == small:       # neither step changes the edges: stars around minima
                break
            previous = small
            round_ += 1
        found = units.run(f"cc-r={round_:03d}-extract", cc_extract, keys)
        out.update(components=f"{round_ + 1} large/small-star round(s)", clusters=sum(f["clusters"] for f in found),
                   removed=sum(f["removed"] for f in found))
    ctx.spent(f"{WORK}/minhash/records")
    ctx.spent(f"{WORK}/minhash/cc")
    ctx.log(f"[dedup] minhash: {out['band_keys']:,} band keys, {out['clusters']:,} clusters, {out['removed']:,} near "
        f"duplicates (components {out['components']}), {time.time() - t0:.1f}s")
    return out


def _checksum(results: list[dict[str, Any]]) -> tuple[int, int]:
    return sum(r["edges"] for r in results), sum(r["checksum"] for r in results) % (1 << 64)
