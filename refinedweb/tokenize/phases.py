"""`refinedweb tokenize`'s phases, plain functions of files under the output root (no Ray here).

scan (a unit per input file): tokenize every document (`tokenizer.py`) and send it to an output shard: with
`tokenize.shuffle` a shard drawn from a hash of (seed, file, row) — the same whatever the split of the work —
else the file's position in the input. The unit writes one spool, shard after shard: tokens
(`_work/tokenize/spool/f=F.tok`) and per document its order key and length (`.doc`).
write (a unit per shard): the shard's segments of every spool, documents sorted by their order key (shuffle: a
hash of (seed, file, row), a random order; else input order), written as Megatron or nanotron files
(`formats.py`). Memory: one shard's tokens (`tokenize.shard_max_tokens` x 2 or 4 bytes) and 12 bytes a
document; a scan holds one batch of documents.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from typing import Any

import numpy as np

from ..hashing import splitmix64
from ..io.remote import FetchConfig, redact
from ..io.scratch import scratch_folder
from ..io.storage import open_storage, safe_name
from ..io.tables import ReadNotes, iter_tables
from . import formats
from .tokenizer import load_tokenizer

TOKENIZED = "tokenized"
WORK = "_work/tokenize"
SPOOL = f"{WORK}/spool"
DOC = np.dtype([("key", "<u8"), ("length", "<u4"), ("corpus", "<u4")])   # corpus: index in the scan's list
BATCH_ROWS = 512
_ORDER = np.uint64(0xD1B54A32D192ED03)


def tokenizer_of(cfg: dict[str, Any], fetch: FetchConfig | None = None):
    t = cfg["tokenize"]
    return load_tokenizer(str(t["tokenizer"]), t["eos"], t["bos"], fetch)


def doc_keys(seed: int, file: int, rows: np.ndarray) -> np.ndarray:
    """A 64-bit key per document from (seed, file, row): where it goes and where it sits in its shard."""
    ident = (np.uint64(file) << np.uint64(40)) | rows.astype(np.uint64)
    return splitmix64(splitmix64(ident) ^ splitmix64(np.uint64(seed)))


def scan_file(index: int, uri: str, shards: int, cfg: dict[str, Any], output: str) -> dict[str, Any]:
    """Tokenize one input file into its spool; documents and tokens per shard, and what was skipped."""
    started = time.time()
    t = cfg["tokenize"]
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    tokenizer = tokenizer_of(cfg, fetch)
    dtype = formats.token_dtype(t["format"], tokenizer.vocab_size)
    shuffle, seed = bool(t["shuffle"]), int(t["seed"])
    notes = ReadNotes()
    spool = scratch_folder("tokenize")
    docs = np.zeros(shards, dtype=np.int64)
    tokens = np.zeros(shards, dtype=np.int64)
    corpora: dict[str, int] = {}                              # corpus name -> its index in this scan
    rows_seen = no_text = 0
    try:
        for table in iter_tables(uri, fetch, BATCH_ROWS, notes, str(cfg["inputs"]["text_field"]), ["corpus"]):
            texts = table.column("text").to_pylist() if "text" in table.column_names else [None] * table.num_rows
            corpus = table.column("corpus").to_pylist() if "corpus" in table.column_names else None
            rows = np.arange(rows_seen, rows_seen + len(texts), dtype=np.int64)
            rows_seen += len(texts)
            present = np.array([bool(x) for x in texts], dtype=bool)
            no_text += int((~present).sum())
            if not present.any():
                continue
            rows = rows[present]
            arrays = tokenizer.encode([x for x, p in zip(texts, present) if p])
            keys = doc_keys(seed, index, rows)
            target = ((keys >> np.uint64(32)) % np.uint64(shards)).astype(np.int64) if shuffle else \
                np.zeros(len(rows), np.int64)
            lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
            order = keys if shuffle else rows.astype(np.uint64)
            names = [c for c, p in zip(corpus, present) if p] if corpus is not None else [None] * len(rows)
            ids = np.array([corpora.setdefault("" if c is None else str(c), len(corpora)) for c in names],
                           dtype=np.uint32)
            for s in np.unique(target).tolist():
                mine = np.flatnonzero(target == s)
                recs = np.empty(len(mine), DOC)
                recs["key"], recs["length"], recs["corpus"] = order[mine], lengths[mine], ids[mine]
                with open(os.path.join(spool, f"{s}.doc"), "ab") as fh:
                    recs.tofile(fh)
                with open(os.path.join(spool, f"{s}.tok"), "ab") as fh:
                    np.concatenate([arrays[i] for i in mine]).astype(dtype).tofile(fh)
                docs[s] += len(mine)
                tokens[s] += int(lengths[mine].sum())
        for suffix in ("tok", "doc"):                   # one file per spool: shard after shard
            relpath = f"{SPOOL}/f={index:05d}.{suffix}"
            tmp = storage.temp_path(relpath)
            with open(tmp, "wb") as out:
                for s in np.flatnonzero(docs).tolist():
                    with open(os.path.join(spool, f"{s}.{suffix}"), "rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 20)
            storage.commit(tmp, relpath)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    from ..dedup.shuffle import pack_array

    return {"file": index, "uri": redact(uri), "rows": rows_seen, "no_text": no_text, "docs": pack_array(docs),
            "tokens": pack_array(tokens), "corpora": list(corpora), "notes": dict(notes.counts),
            "bad_lines": notes.bad_lines, "seconds": round(time.time() - started, 3)}


def write_table(storage, counts_docs: np.ndarray, counts_tokens: np.ndarray) -> None:
    """`<SPOOL>/segments.bin`: per shard and file, (first document, documents, first token, tokens) in the
    file's spool (int64, shard-major). `counts_*`: files x shards."""
    relpath = f"{SPOOL}/segments.bin"
    tmp = storage.temp_path(relpath)
    doc_first = np.cumsum(counts_docs, axis=1) - counts_docs
    tok_first = np.cumsum(counts_tokens, axis=1) - counts_tokens
    with open(tmp, "wb") as fh:
        for s in range(0, counts_docs.shape[1], 256):
            sl = slice(s, s + 256)
            np.stack([doc_first[:, sl].T, counts_docs[:, sl].T, tok_first[:, sl].T, counts_tokens[:, sl].T],
                     axis=1).astype("<i8").tofile(fh)
    storage.commit(tmp, relpath)


def _segments(storage, shard: int, files: int) -> list[tuple[int, int, int, int, int]]:
    row = 4 * files * 8
    with storage.local_range(f"{SPOOL}/segments.bin", shard * row, row) as (path, offset):
        with open(path, "rb") as fh:
            fh.seek(offset)
            table = np.frombuffer(fh.read(row), dtype="<i8").reshape(4, files)
    return [(f, *map(int, table[:, f])) for f in np.flatnonzero(table[1]).tolist()]


def write_shard(shard: int, files: int, name: str, corpora: dict[int, list[str]], cfg: dict[str, Any], output: str,
                token_range: tuple[int, int] | None = None, spools: list | None = None) -> dict[str, Any]:
    """Gather the shard's documents, order them, write the trainer's files. With `tokenize.shuffle` its documents
    are its segments of every spool (the segment table), in the order of their keys; without, the documents whose
    first token falls in `token_range` of the whole input (`spools`: (file, first token, tokens) of each spool
    that overlaps it), in input order."""
    started = time.time()
    t = cfg["tokenize"]
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    tokenizer = tokenizer_of(cfg, fetch)
    fmt = t["format"]
    dtype = formats.token_dtype(fmt, tokenizer.vocab_size)
    segments = _segments(storage, shard, files) if token_range is None else \
        _range_segments(storage, token_range, spools or [])
    recs = np.empty(sum(s[2] for s in segments), DOC)
    tokens = np.empty(sum(s[4] for s in segments), dtype)
    at_doc = at_tok = 0
    for f, doc_first, ndocs, tok_first, ntok in segments:
        _read_into(storage, f"{SPOOL}/f={f:05d}.doc", doc_first * DOC.itemsize, recs[at_doc:at_doc + ndocs])
        _read_into(storage, f"{SPOOL}/f={f:05d}.tok", tok_first * dtype.itemsize, tokens[at_tok:at_tok + ntok])
        at_doc, at_tok = at_doc + ndocs, at_tok + ntok
    lengths = recs["length"].astype(np.int64)
    order = None
    if token_range is None:                            # a random order: by key (ties: the gathering order)
        order = np.lexsort((np.arange(len(recs)), recs["key"]))
        starts = np.zeros(len(recs), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        lengths = lengths[order]
        shuffled = np.empty_like(tokens)               # one copy of the shard, document by document
        at = 0
        for start, n in zip(starts[order].tolist(), lengths.tolist()):
            shuffled[at:at + n] = tokens[start:start + n]
            at += n
        tokens = shuffled
        del shuffled
    corpus_of = recs["corpus"] if token_range is not None else recs["corpus"][order]
    files_of = np.repeat(np.arange(len(segments)), [s[2] for s in segments])
    files_of = files_of if token_range is not None else files_of[order]
    names = [[corpora[s[0]][c] if corpora.get(s[0]) else "" for c in range(max(1, len(corpora.get(s[0], []))))]
             for s in segments]
    entries = []
    ends = np.cumsum(lengths)
    pieces = max(1, -(-int(ends[-1]) // int(t["shard_max_tokens"]))) if len(ends) else 1
    cuts = np.searchsorted(ends, [int(ends[-1]) * k // pieces for k in range(1, pieces)], side="right") \
        if len(ends) else np.empty(0, np.int64)
    doc_bounds = [0, *[int(c) for c in cuts], len(lengths)]
    for k in range(pieces):                        # a shard the estimate made too big: files of <= max tokens
        a, b = doc_bounds[k], doc_bounds[k + 1]
        if a == b:
            continue
        t0, t1 = (int(ends[a - 1]) if a else 0), (int(ends[b - 1]) if b else 0)
        piece = name if pieces == 1 else f"{name}-{k:03d}"
        written = _write_files(storage, fmt, f"{TOKENIZED}/{piece}", tokens[t0:t1], lengths[a:b], tokenizer, dtype)
        entry = {"path": f"{TOKENIZED}/{piece}", "rows": b - a, "tokens": t1 - t0,
                 "bytes": sum(w["bytes"] for w in written), "files": written}
        counts: dict[str, dict[str, int]] = {}
        for f_index, c, n in zip(files_of[a:b].tolist(), corpus_of[a:b].tolist(), lengths[a:b].tolist()):
            slot = counts.setdefault(names[f_index][c], {"rows": 0, "tokens": 0})
            slot["rows"] += 1
            slot["tokens"] += n
        if set(counts) - {""}:
            entry["corpora"] = counts
        entries.append(entry)
    return {"shard": shard, "entries": entries, "seconds": round(time.time() - started, 3)}


def _range_segments(storage, token_range: tuple[int, int], spools: list) -> list[tuple[int, int, int, int, int]]:
    """(file, first document, documents, first token, tokens) of the documents that start in `token_range`."""
    lo, hi = token_range
    out = []
    for f, first, _, ndocs in spools:
        recs = np.empty(ndocs, DOC)
        _read_into(storage, f"{SPOOL}/f={f:05d}.doc", 0, recs)
        starts = first + np.concatenate(([0], np.cumsum(recs["length"].astype(np.int64))[:-1]))
        a, b = (int(x) for x in np.searchsorted(starts, [lo, hi]))
        if a < b:
            out.append((f, a, b - a, int(starts[a] - first), int(recs["length"][a:b].astype(np.int64).sum())))
    return out


def _read_into(storage, relpath: str, offset: int, out: np.ndarray) -> None:
    size = out.nbytes
    if not size:
        return
    with storage.local_range(relpath, offset, size) as (path, start):
        with open(path, "rb") as fh:
            fh.seek(start)
            if fh.readinto(memoryview(out).cast("B")) != size:
                raise OSError(f"{relpath}: shorter than its segment table says")


def _write_files(storage, fmt: str, prefix: str, tokens: np.ndarray, lengths: np.ndarray, tokenizer,
                 dtype: np.dtype) -> list[dict[str, Any]]:
    if fmt == "megatron":
        contents = [(f"{prefix}.bin", tokens.astype(dtype, copy=False)),
                    (f"{prefix}.idx", formats.megatron_index(lengths, dtype))]
    else:
        name = "gpt2" if tokenizer.name == "gpt2" else tokenizer.name
        contents = [(f"{prefix}.ds", tokens.astype(dtype, copy=False)),
                    (f"{prefix}.ds.index", formats.datatrove_index(lengths)),
                    (f"{prefix}.ds.metadata", formats.datatrove_metadata(name, dtype.itemsize,
                                                                        int(lengths.sum())).encode("utf-8"))]
    written = []
    for relpath, data in contents:
        tmp = storage.temp_path(relpath)
        digest = hashlib.sha256()
        with open(tmp, "wb") as fh:
            view = memoryview(data).cast("B") if isinstance(data, np.ndarray) else memoryview(data)
            for at in range(0, len(view), 1 << 24):
                block = view[at:at + (1 << 24)]
                fh.write(block)
                digest.update(block)
            size = fh.tell()
        storage.commit(tmp, relpath)
        written.append({"path": relpath, "bytes": size, "sha256": digest.hexdigest()})
    return written


def shard_name(shard: int, shards: int) -> str:
    return safe_name(f"shard-{shard:05d}-of-{shards:05d}")
