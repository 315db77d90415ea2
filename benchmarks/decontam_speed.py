"""Decontamination cost: the index's memory for ~10M benchmark n-grams, and the stage's throughput on one core
over the planted dedup corpus (`planted_corpus.py`), against the dedup stage's 1.2-1.3 core-ms per document.

    .venv/bin/python benchmarks/decontam_speed.py --docs 20000 --seeds 0 1 2

Per seed: a planted corpus of `--docs` documents; a benchmark of 2,000 items (20-60 words of the corpus's
vocabulary in fresh order), one of which is planted into each of 1% of the documents; a large index of ~10M 13-grams (items of random vocabulary words, plus the 2,000). The stage runs as the
pipeline runs it (batches of `filter.chunk_documents`), once with each index; the count phase's function
(`count_documents`) is timed too. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.dataset as ds

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus(docs: int, seed: int) -> list[str]:
    from planted_corpus import build

    out = Path(tempfile.mkdtemp(prefix=f"decontam-corpus-{seed}-"))
    build(docs, out, seed=seed)
    files = sorted(str(p) for p in out.glob("*.parquet"))
    return ds.dataset(files, format="parquet").to_table(columns=["text"]).column("text").to_pylist()


def benchmark_items(texts: list[str], rng: random.Random, vocabulary: list[str]) -> tuple[list[str], int]:
    """2,000 items of 20-60 vocabulary words in fresh order; each of 1% of the documents gets one planted (as a
    contaminated web page quotes a test item). Returns the items and how many documents were planted."""
    items = [" ".join(rng.choices(vocabulary, k=rng.randint(20, 60))) for _ in range(2000)]
    planted = rng.sample(range(len(texts)), len(texts) // 100)
    for i in planted:
        cut = texts[i].find(" ", len(texts[i]) // 2)
        texts[i] = texts[i][:cut] + " " + rng.choice(items) + texts[i][cut:]
    return items, len(planted)


def index_of(items: list[str], n: int = 13, min_words: int = 8):
    from refinedweb.decontamination.index import Index, item_keys

    keys = item_keys(items, n, min_words)
    return Index.build(keys.keys, keys.anchors, keys.length, np.zeros(len(keys.keys), np.int64), 1, n, min_words)


def stage_for(index, chunk: int):
    from refinedweb.config import load_config
    from refinedweb.stages import decontaminate

    path = tempfile.mktemp(suffix=".bin")
    layout = index.save(path)
    from refinedweb.io.cache import sha256_file

    plan = {"index": {"uri": path, "sha256": sha256_file(path), "size": os.path.getsize(path), "layout": layout}}
    section = {**load_config()["decontamination"], "benchmarks": [{"name": "bench", "path": "unused.jsonl"}]}
    return decontaminate.build(section, SimpleNamespace(plan=plan, fetch=None)), plan, path


def timed_pass(stage, texts: list[str], chunk: int) -> tuple[float, int, int]:
    from refinedweb.documents import Document

    docs = [Document(id=str(i), url="", source="", text=t) for i, t in enumerate(texts)]
    started = time.perf_counter()
    dropped = 0
    for first in range(0, len(docs), chunk):
        dropped += sum(r is not None for r in stage.batch(docs[first:first + chunk]))
    seconds = time.perf_counter() - started
    touched = sum(1 for d in docs if d.metadata.get("contamination"))
    return seconds, touched, dropped


def timed_count(plan: dict, texts: list[str], chunk: int) -> float:
    from refinedweb.documents import Document
    from refinedweb.stages.decontaminate import count_documents

    docs = [Document(id=str(i), url="", source="", text=t) for i, t in enumerate(texts)]
    started = time.perf_counter()
    for first in range(0, len(docs), chunk):
        count_documents(docs[first:first + chunk], plan["index"], None)
    return time.perf_counter() - started


def _smaps() -> dict[str, int]:
    out = {}
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) // 1024
    return out


def _worker(plan: dict, texts: list[str], chunk: int, ready, go) -> dict:
    """A task's process: map the index, scan, report its memory (MiB) while its sibling holds the same map."""
    from refinedweb.stages.decontaminate import _load, count_documents

    before = _smaps()
    index = _load(plan["index"], None)
    from refinedweb.documents import Document

    docs = [Document(id=str(i), url="", source="", text=t) for i, t in enumerate(texts)]
    for first in range(0, len(docs), chunk):
        count_documents(docs[first:first + chunk], plan["index"], None)
    np.asarray(index.keys).sum(), np.asarray(index.key_bits).sum(), np.asarray(index.anchor_bits).sum()   # every page
    ready.wait()
    after = _smaps()
    go.wait()
    return {k: after.get(k, 0) - before.get(k, 0) for k in ("Rss", "Pss", "Private_Clean", "Private_Dirty",
                                                             "Shared_Clean", "Pss_File")}


def shared_memory(plan: dict, texts: list[str], chunk: int, workers: int = 2) -> list[dict]:
    """`workers` processes (as a node's Ray workers) mapping one index: what each adds to RSS and to PSS (its
    proportional share; file pages shared between the processes count once in total)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        ready, go = manager.Barrier(workers), manager.Barrier(workers)
        with ctx.Pool(workers) as pool:
            return pool.starmap(_worker, [(plan, texts, chunk, ready, go)] * workers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--large-ngrams", type=int, default=10_000_000)
    args = parser.parse_args()
    from refinedweb.config import load_config

    chunk = int(load_config()["filter"]["chunk_documents"])
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
                     f"{os.cpu_count()} cpus, {platform.system()}", "docs": args.docs, "chunk": chunk, "seeds": {}}
    for seed in args.seeds:
        rng = random.Random(seed)
        texts = corpus(args.docs, seed)
        vocabulary = sorted({w for t in texts[:2000] for w in t.split() if w.isalpha()})   # a URL token is 13+ words
        items, planted = benchmark_items(texts, rng, vocabulary)
        run: dict = {"chars_per_doc": round(sum(map(len, texts)) / len(texts)), "planted": planted}
        small = index_of(items)
        stage, plan, path = stage_for(small, chunk)
        timed_pass(stage, texts[:500], chunk)                         # compile and map
        seconds, touched, dropped = timed_pass(stage, texts, chunk)
        run["small"] = {"items": len(items), "ngrams": len(small.keys), "index_mb": round(small.nbytes / 2**20, 2),
                        "docs_per_s": round(len(texts) / seconds), "ms_per_doc": round(1000 * seconds / len(texts), 4),
                        "touched": touched, "dropped": dropped,
                        "count_docs_per_s": round(len(texts) / timed_count(plan, texts, chunk))}
        os.unlink(path)
        # ~10M n-grams: random-vocabulary items of 40 words (28 13-grams each) beside the 2,000
        before = rss_mb()
        started = time.perf_counter()
        per_item = 40 - 13 + 1
        large_items = items + [" ".join(rng.choices(vocabulary, k=40)) for _ in range(args.large_ngrams // per_item)]
        large = index_of(large_items)
        build_s = time.perf_counter() - started
        stage, plan, path = stage_for(large, chunk)
        del large
        timed_pass(stage, texts[:500], chunk)
        seconds, touched, dropped = timed_pass(stage, texts, chunk)
        run["large"] = {"items": len(large_items), "ngrams": len(plan["index"]["layout"]["arrays"]["keys"]) and
                        plan["index"]["layout"]["arrays"]["keys"][2], "index_file_mb": round(os.path.getsize(path) / 2**20, 1),
                        "build_s": round(build_s, 1), "driver_peak_rss_growth_mb": round(rss_mb() - before),
                        "docs_per_s": round(len(texts) / seconds), "ms_per_doc": round(1000 * seconds / len(texts), 4),
                        "touched": touched, "dropped": dropped,
                        "count_docs_per_s": round(len(texts) / timed_count(plan, texts, chunk))}
        if seed == args.seeds[0] and os.path.exists("/proc/self/smaps_rollup"):
            run["large"]["two_workers_mib"] = shared_memory(plan, texts[:2000], chunk)
        os.unlink(path)
        results["seeds"][seed] = run
        print(json.dumps({seed: run}), file=sys.stderr)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
