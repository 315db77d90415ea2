"""Exact-substring removal (RW §3.3, after Lee et al. 2022): its phases and the order they run in.

scan: a 64-bit hash of every in-document 50-token window -> buckets (parts); bucket: windows whose hash
occurs twice or more -> marked (remove_all: every occurrence; keep_first: all but the earliest); marks are
merged into one sorted file per part, and the union of a document's marked windows is cut (`Cuts`).
Kernels: `dedup/kernels/windows.py`; the suffix-array reference it is tested against: `dedup/reference/suffix_array.py`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import UserError
from ..corpus import Corpus
from ..decisions import PartFiles, replace_text
from ..kernels.windows import ExactSubstringConfig, cut_windows, tokenize, window_records
from ..plan import WORK, DedupRun, bucket_stats, bucket_units, open_work, timed
from ..scan import scan_part
from ..shuffle import bucket_segments, passes_for, read_bucket, task_budget_bytes

NAME = "exact_substring"
VERSION = 1                # the resume fingerprint covers it: bump it when what the method removes changes
WINDOW_RECORD = np.dtype([("key", "<u8"), ("row", "<u4"), ("offset", "<u4")])
BUCKET_BYTES = 96
GPT2_BYTES_PER_TOKEN = 3.0           # a low estimate of web text's UTF-8 bytes per GPT-2 token
_LOW32 = np.uint64(0xFFFFFFFF)


def planned_records(cfg: dict[str, Any], corpus: Corpus) -> int:
    return int(corpus.text_bytes / GPT2_BYTES_PER_TOKEN)


def min_buckets(cfg: dict[str, Any], parts: int) -> int:
    return parts


class Cuts:
    """This method's decision: cut every marked window out of the part's documents (a document left with
    fewer than `min_words` words leaves). The part's sorted marks are memory-mapped, not loaded."""

    extra_stats = ("duplicate_spans",)

    def __init__(self, storage, cfg: dict[str, Any], part: int, stack):
        ecfg = cfg["dedup"]["exact_substring"]
        self.cfg, self.k, self.min_words = cfg, int(ecfg["min_tokens"]), int(ecfg["min_words"])
        self.marks: list[np.ndarray] = []
        relpath = f"{WORK}/exact_substring/marks/p={part:05d}.npy"
        if storage.exists(relpath):
            path = stack.enter_context(storage.local_copy(relpath))
            self.marks.append(np.load(path, mmap_mode="r"))

    def __call__(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table, dict[str, int]]:
        rows, table, spans = self._cut(rows, table, self.k, self.min_words)
        return rows, table, {"duplicate_spans": spans}

    def _marks_of(self, rows: np.ndarray) -> np.ndarray:
        lo = np.uint64(int(rows.min())) << np.uint64(32)
        hi = np.uint64(int(rows.max()) + 1) << np.uint64(32)
        found = [np.asarray(m[np.searchsorted(m, lo):np.searchsorted(m, hi)]) for m in self.marks]
        return np.sort(np.concatenate(found)) if found else np.empty(0, np.uint64)

    def _cut(self, rows: np.ndarray, table: pa.Table, k: int, min_words: int) -> tuple[np.ndarray, pa.Table, int]:
        if not len(rows) or not self.marks:
            return rows, table, 0
        marks = self._marks_of(rows)
        if not len(marks):
            return rows, table, 0
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
            table = replace_text(table, texts, self.cfg)
        return rows[keep], table.filter(pa.array(keep)), spans


def decision(storage, cfg: dict[str, Any], part: int, stack) -> Cuts:
    return Cuts(storage, cfg, part, stack)


def scan_exact(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Hashes of every in-document `min_tokens`-token window, to buckets by hash. Text is tokenised in chunks
    of at most `exact_substring.max_part_bytes`."""
    started = time.time()
    ecfg = ExactSubstringConfig.from_config(cfg["dedup"]["exact_substring"])
    tokens = too_short = 0

    def records_of(rows: list[int], texts: list[str]) -> np.ndarray:
        nonlocal tokens, too_short
        arrays = tokenize(texts)
        tokens += sum(len(a) for a in arrays)
        # fewer tokens than a window (null or empty text too): no window, nothing to match or cut
        too_short += sum(len(a) < ecfg.min_tokens for a in arrays)
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

    counts = scan_part(part, cfg, output, "exact_substring", WINDOW_RECORD, ["text"], produce)
    return timed(started, part=part, tokens=tokens, too_short=too_short, records=counts)


def exact_bucket(bucket: int, passes: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Windows whose hash occurs more than once: every occurrence (remove_all) or all but the earliest
    (keep_first) is marked, and the marks are sent to the parts."""
    started = time.time()
    storage, _, corpus = open_work(cfg, output)
    keep_first = cfg["dedup"]["exact_substring"]["policy"] == "keep_first"
    starts = corpus.part_starts
    windows = repeated = marked = 0
    folder = f"{WORK}/exact_substring/records"
    with PartFiles(storage, f"{WORK}/exact_substring/bucket-marks", f"b{bucket:05d}", np.uint64) as sink:
        for records, ordinals in read_bucket(storage, folder, bucket_segments(storage, folder, bucket, corpus.parts),
                                             WINDOW_RECORD, starts, passes):
            windows += len(records)
            if not len(records):
                continue
            groups, chosen = _marked(records["key"], records["offset"], ordinals, keep_first)
            repeated += groups
            marked += len(chosen)
            mark_ordinals = ordinals[chosen]
            encoded_parts = corpus.part_of(mark_ordinals)
            encoded = ((mark_ordinals - starts[encoded_parts]).astype(np.uint64) << np.uint64(32)) \
                | records["offset"][chosen].astype(np.uint64)
            del records, ordinals
            sink.add(encoded_parts, encoded)
    return timed(started, bucket=bucket, passes=passes, windows=windows, repeated_windows=repeated,
                  marked_windows=marked)


def _marked(keys: np.ndarray, offsets: np.ndarray, ordinals: np.ndarray, keep_first: bool) -> tuple[int, np.ndarray]:
    """(hashes occurring more than once, indices of the windows to mark)."""
    order = np.lexsort((offsets, ordinals, keys))
    keys = keys[order]
    dup = np.zeros(len(keys), dtype=bool)
    same = keys[1:] == keys[:-1]
    dup[1:] |= same
    dup[:-1] |= same
    groups = int(np.count_nonzero(dup & np.concatenate(([True], ~same))))
    if keep_first:
        dup &= np.concatenate(([False], same))     # the earliest of each group stays
    return groups, order[dup]


def merge_marks(part: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """The part's marks from every bucket (a sorted file each) as one sorted file, so that applying them
    maps one file. Merged in row ranges that fit the task budget; one input file open at a time."""
    started = time.time()
    storage, _, corpus = open_work(cfg, output)
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
    return timed(started, part=part, marks=total, passes=passes)


def run(ctx: DedupRun) -> dict[str, Any]:
    t0 = time.time()
    units, cfg, uri = ctx.units, ctx.cfg, ctx.uri
    scans = units.run("exact-scan", scan_exact, {k: (p, cfg, uri) for p, k in ctx.part_keys.items()})
    planned = bucket_units(ctx, NAME, "exact-bucket", scans, BUCKET_BYTES)
    buckets = units.run("exact-bucket", exact_bucket, {k: (b, n, cfg, uri) for k, (b, n) in planned.items()})
    out = {key: sum(r[key] for r in buckets) for key in ("windows", "repeated_windows", "marked_windows")}
    out["tokens"] = sum(s["tokens"] for s in scans)
    out["too_short"] = sum(s.get("too_short", 0) for s in scans)
    out.update(bucket_stats(buckets))
    ctx.spent(f"{WORK}/exact_substring/records")
    units.run("exact-marks", merge_marks, {k: (p, cfg, uri) for p, k in ctx.part_keys.items()})
    ctx.spent(f"{WORK}/exact_substring/bucket-marks")
    ctx.log(f"[dedup] exact_substring: {out['tokens']:,} tokens, {out['repeated_windows']:,} windows repeated, "
            f"{time.time() - t0:.1f}s")
    return out
