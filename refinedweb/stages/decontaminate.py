"""Benchmark decontamination (not in RW; GPT-3's, Brown et al. 2020, App. C): text that overlaps the user's
benchmark files is cut out of the documents, or the documents dropped.

The driver reads the benchmarks, builds the index of their normalized word n-grams (`decontamination/`), and,
when `max_matches` is set, counts over the whole input how many documents hold each benchmark n-gram: one that
more than `max_matches` documents hold is a common phrase, not contamination (lm-eval's rule), and leaves the
index. Counting needs every document before deciding any, so over Parquet it is a first, read-only scan of
the input (the numba scan alone: ~10x cheaper than the pass); in the filter chain, where documents are not yet
deduplicated and exist only once, it is refused (run the stage over the dedup output). The tasks memory-map
the final index. `gpt3` cuts a `window` of characters around each match (widened to whole words), drops the
pieces shorter than `min_piece` and the document when it falls into more than `max_pieces` pieces;
`drop_document` (datatrove's) drops every touched document. Counts per benchmark go to the stats, and
`decontamination.json` (`summary`) says which items and n-grams matched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import UserError
from ..io.scratch import scratch_file
from ..settings import from_section, setting
from .contract import DETAIL, Stage, count_key

BENCHMARK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BENCHMARKS = 64            # the owners of a key are a bitmask
TOP = 25                       # n-grams per benchmark in decontamination.json and the report


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    path: str
    fields: tuple[str, ...]


def _benchmarks(value: Any, key: str) -> tuple[Benchmark, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise UserError(f"config key '{key}' must be a list of {{name, path, fields}}, got {value!r}")
    out = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise UserError(f"config key '{key}': each benchmark is {{name: ..., path: ..., fields: [...]}} "
                            f"(fields default [text]), got {entry!r}")
        unknown = set(entry) - {"name", "path", "fields"}
        if unknown:
            raise UserError(f"config key '{key}': benchmark {entry['name']} has unknown key '{sorted(unknown)[0]}'")
        if not BENCHMARK_NAME.match(entry["name"]):
            raise UserError(f"config key '{key}': benchmark name '{entry['name']}' must be letters, digits, _ . -")
        fields = entry.get("fields", ["text"])
        fields = [fields] if isinstance(fields, str) else fields
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise UserError(f"config key '{key}': benchmark {entry['name']}'s fields must be a list of field names")
        out.append(Benchmark(entry["name"], entry["path"], tuple(fields)))
    names = [b.name for b in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"config key '{key}' names the benchmark '{twice[0]}' twice")
    if len(out) > MAX_BENCHMARKS:
        raise UserError(f"config key '{key}': at most {MAX_BENCHMARKS} benchmarks per run (merge files of one suite "
                        "into one benchmark)")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DecontaminationConfig:
    benchmarks: tuple[Benchmark, ...] = setting(parse=_benchmarks)
    n: int = setting(min=1, max=64)
    min_words: int = setting(min=1)
    max_matches: int | None = setting(min=1)
    policy: str = setting(choices=("gpt3", "drop_document"))
    window: int = setting(min=0)
    min_piece: int = setting(min=0)
    max_pieces: int = setting(min=1)

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise UserError("decontamination.benchmarks is empty: give your benchmark files, e.g. --set "
                            "'decontamination.benchmarks=[{name: mine, path: bench.jsonl}]'")
        if self.min_words > self.n:
            raise UserError(f"decontamination.min_words ({self.min_words}) must be <= n ({self.n})")

    @classmethod
    def from_config(cls, section: dict) -> "DecontaminationConfig":
        return from_section(cls, section, SECTION)


def _load(index_plan: dict, fetch):
    """The run's index, memory-mapped (once per worker process: tasks of one process share it)."""
    from ..decontamination.index import Index
    from ..io.cache import cached_file

    sha = index_plan["sha256"]
    if sha not in _INDEXES:
        path, _ = cached_file(index_plan["uri"], fetch, {"sha256": sha, "size": index_plan["size"]})
        _INDEXES.clear()
        _INDEXES[sha] = Index.load(path, index_plan["layout"])
    return _INDEXES[sha]


_INDEXES: dict[str, Any] = {}


def _key_hex(key) -> str:
    return f"{int(key):016x}"


def count_documents(docs: list, index_plan: dict, fetch) -> dict[str, int]:
    """Per key (hex), how many of `docs` hold it: the count phase's unit (`PlanContext.count`)."""
    index = _load(index_plan, fetch)
    doc, _, _, key = index.find([d.text for d in docs])
    if not len(doc):
        return {}
    stride = len(index.keys) + 1
    held, documents = np.unique(np.unique(doc * stride + key) % stride, return_counts=True)
    return {_key_hex(index.keys[k]): int(c) for k, c in zip(held, documents)}


def _put_index(index, name: str, context) -> dict:
    path = scratch_file("decontamination")
    try:
        layout = index.save(path)
        return {**context.put(name, path), "layout": layout}
    finally:
        if os.path.exists(path):
            os.unlink(path)


def _read(cfg: DecontaminationConfig, files: dict) -> list[tuple[Benchmark, list[str], Any]]:
    from ..decontamination.benchmarks import read_items
    from ..decontamination.index import item_keys

    out = []
    for bench in cfg.benchmarks:
        f = files[f"benchmark:{bench.name}"]
        items = read_items(f["path"], list(bench.fields), f["uri"])
        out.append((bench, items, item_keys(items, cfg.n, cfg.min_words)))
    return out


def _ngram_text(items: list[str], keys, key_hex: str) -> str:
    from ..decontamination.ngrams import normalize

    where = np.flatnonzero(keys.keys == np.uint64(int(key_hex, 16)))
    if not len(where):
        return ""
    i = where[0]
    words = normalize(items[keys.item[i]])
    return " ".join(words[keys.start[i]:keys.start[i] + keys.length[i]])


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "decontaminate"
SECTION = "decontamination"
VERSION = 1
LABEL = "Decontamination"
CONFIG = DecontaminationConfig
EDITS_TEXT = True
SIGNALS = {"contamination": pa.list_(pa.string())}


def files(section: dict) -> dict[str, str]:
    """The benchmark files: hashed by the driver, so that a changed benchmark never resumes an old run."""
    return {f"benchmark:{b.name}": b.path for b in DecontaminationConfig.from_config(section).benchmarks}


def plan(section: dict, context) -> dict[str, Any]:
    """The index, after the count phase has taken out n-grams too common to count; written with the run."""
    from ..decontamination.index import Index

    cfg = DecontaminationConfig.from_config(section)
    read = _read(cfg, context.files)
    every = [ik for _, _, ik in read]
    owner = np.concatenate([np.full(len(ik.keys), b, np.int64) for b, ik in enumerate(every)])
    index = Index.build(np.concatenate([ik.keys for ik in every]), np.concatenate([ik.anchors for ik in every]),
                        np.concatenate([ik.length for ik in every]), owner, len(every), cfg.n, cfg.min_words)
    out: dict[str, Any] = {"benchmarks": {
        bench.name: {"items": len(items), "items_too_short": int((ik.words < cfg.min_words).sum()),
                     "ngrams": int(len(np.unique(ik.keys)))} for bench, items, ik in read}}
    context.log(f"[{NAME}] {sum(len(items) for _, items, _ in read)} item(s) of {len(read)} benchmark(s): "
                f"{len(index.keys)} distinct {cfg.n}-gram(s) and short items, index {index.nbytes / 2**20:.1f} MiB")
    if cfg.max_matches is not None and len(index.keys):
        if context.kind != "documents":
            raise UserError("decontamination.max_matches counts each benchmark n-gram over the whole corpus before "
                            "cutting any: run the stage over the dedup output (refinedweb run --stage decontaminate "
                            "--input OUT/dedup ...), or set decontamination.max_matches: null in the filter chain")
        full = _put_index(index, "index-all.bin", context)
        context.log(f"[{NAME}] counting the documents that hold each benchmark n-gram (max_matches "
                    f"{cfg.max_matches}) over {len(context.inputs)} file(s)")
        counts = context.count(count_documents, full, context.fetch)
        common = {k: c for k, c in counts.items() if c > cfg.max_matches}
        if common:
            drop = np.searchsorted(index.keys, np.array([int(k, 16) for k in common], np.uint64))
            index = index.without(drop)
        top = sorted(common.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        out["ignored"] = {"ngrams": len(common), "matched_ngrams": len(counts),
                          "top": [{"ngram": next((t for _, items, ik in read if (t := _ngram_text(items, ik, k))), ""),
                                   "documents": c} for k, c in top]}
        context.log(f"[{NAME}] {len(counts)} benchmark n-gram(s) occur in the input; {len(common)} in more than "
                    f"{cfg.max_matches} documents are ignored as common phrases")
    out["index"] = _put_index(index, "index.bin", context)
    out["ngrams"] = int(len(index.keys))
    return out


def build(section: dict, shared) -> Stage:
    cfg = DecontaminationConfig.from_config(section)
    names = [b.name for b in cfg.benchmarks]
    index_plan, fetch = shared.plan["index"], shared.fetch
    kinds = tuple(f"{b}:{k}" for b in names for k in ("documents", "dropped", "chars_removed", "matches")) + ("ngrams",)

    def batch(docs: list) -> list[str | None]:
        from ..decontamination.ngrams import normalize

        index = _load(index_plan, fetch)
        reasons: list[str | None] = [None] * len(docs)
        doc, start, end, key = index.find([d.text for d in docs])
        if not len(doc):
            return reasons
        bounds = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            d = docs[int(doc[a])]
            owners = [int(o) for o in index.owners[key[a:b]]]
            reason, text, removed = _apply(cfg, d.text, start[a:b], end[a:b], owners, len(names))
            first = int(np.flatnonzero(owners[0] >> np.arange(len(names)) & 1)[0])
            touched = [names[i] for i in range(len(names)) if any(o >> i & 1 for o in owners)]
            for i, name in enumerate(names):
                if name not in touched:
                    continue
                d.metadata[count_key(f"{name}:documents")] = 1
                d.metadata[count_key(f"{name}:matches")] = sum(1 for o in owners if o >> i & 1)
                d.metadata[count_key(f"{name}:chars_removed")] = removed[i]
                if reason:
                    d.metadata[count_key(f"{name}:dropped")] = 1
            d.metadata[count_key("ngrams")] = {_key_hex(index.keys[k]): 1 for k in set(key[a:b].tolist())}
            d.metadata["contamination"] = touched
            if reason:
                ngram = " ".join(normalize(d.text[int(start[a]):int(end[a])]))
                d.metadata[DETAIL] = f"{names[first]}: {ngram}"
                reasons[int(doc[a])] = reason
            else:
                d.text = text
        return reasons

    return Stage(NAME, batch=batch, counts=kinds)


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """A cut widened to whole words: no half word is left at either side."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _apply(cfg: DecontaminationConfig, text: str, starts, ends, owners: list[int],
           benchmarks: int) -> tuple[str | None, str, list[int]]:
    """(drop reason or None, the text left, characters removed per benchmark) for one touched document."""
    if cfg.policy == "drop_document":
        return "contaminated", text, [len(text)] * benchmarks
    cuts = [_widen(text, max(0, int(s) - cfg.window), min(len(text), int(e) + cfg.window)) for s, e in zip(starts, ends)]
    removed = [sum(e - s for s, e in _merged([c for c, o in zip(cuts, owners) if o >> i & 1]))
               for i in range(benchmarks)]
    pieces, last = [], 0
    for s, e in _merged(cuts):
        pieces.append(text[last:s])
        last = e
    pieces.append(text[last:])
    pieces = [p.strip() for p in pieces]
    pieces = [p for p in pieces if p]
    if len(pieces) > cfg.max_pieces:
        return "too_many_pieces", text, [len(text)] * benchmarks
    kept = [p for p in pieces if len(p) >= cfg.min_piece]
    if not kept:
        return "contaminated", text, [len(text)] * benchmarks
    left = "\n\n".join(kept)
    dropped_pieces = sum(len(p) for p in pieces if len(p) < cfg.min_piece)
    return None, left, [r + dropped_pieces if r else 0 for r in removed]


def summary(section: dict, plan: dict, stats: dict, files: dict) -> dict[str, Any]:
    """decontamination.json: per benchmark, the items with any overlap, the documents touched and dropped, the
    characters removed and the n-grams matched most (their text), so that contamination can be told from a
    common phrase."""
    cfg = DecontaminationConfig.from_config(section)
    counts = stats.get("counts", {})
    matched = counts.get("ngrams", {})
    out: dict[str, Any] = {"n": cfg.n, "min_words": cfg.min_words, "max_matches": cfg.max_matches,
                           "policy": cfg.policy, "documents_in": stats.get("docs_in", 0),
                           "ngrams_in_index": plan.get("ngrams"), "ignored": plan.get("ignored"), "benchmarks": {}}
    read = _read(cfg, files) if files else []
    for bench, items, ik in read:
        hit = np.isin(ik.keys, np.array([int(k, 16) for k in matched] or [0], np.uint64)) if matched else \
            np.zeros(len(ik.keys), bool)
        mine = {}
        for k in np.unique(ik.keys[hit]):
            mine[_key_hex(k)] = matched[_key_hex(k)]
        top = sorted(mine.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        name = bench.name
        out["benchmarks"][name] = {
            **plan.get("benchmarks", {}).get(name, {}),
            "items_with_overlap": int(len(np.unique(ik.item[hit]))),
            "documents": counts.get(f"{name}:documents", 0), "documents_dropped": counts.get(f"{name}:dropped", 0),
            "chars_removed": counts.get(f"{name}:chars_removed", 0), "matches": counts.get(f"{name}:matches", 0),
            "top_ngrams": [{"ngram": _ngram_text(items, ik, k), "documents": c} for k, c in top]}
    return out
