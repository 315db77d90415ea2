#!/usr/bin/env python
"""Baseline of the dedup benchmark: datatrove 0.10.1's four MinHash stages on a planted corpus.

Run it with the benchmark venv made by ``benchmarks/setup_datatrove_venv.sh``::

    /work/main/.venv-bench-datatrove/bin/python benchmarks/datatrove_minhash.py \
        --input /work/bench/pl200k [--buckets 450 --hashes-per-bucket 20] [--workers 2] [--limit 20000]

The corpus is one built by ``benchmarks/planted_corpus.py`` (``in-NNN.parquet`` with id, url, text, and
``truth.json``). Prints one JSON object: config, documents, wall seconds per stage and in total, docs/s and
docs/s per core, peak memory, datatrove's own counters and the recall of the planted near copies.

Pipeline (as in datatrove's ``examples/minhash_deduplication.py``), each stage one ``LocalPipelineExecutor``
run, timed from its ``run()`` call to its return (process pool start-up included), one after the other:

1. signatures: ``ParquetReader -> MinhashDedupSignature``   tasks = workers (datatrove gives task ``r`` the
   files ``r, r + tasks, ...`` of the sorted file list)
2. buckets:    ``MinhashDedupBuckets``                       tasks = num_buckets (datatrove needs a multiple)
3. cluster:    ``MinhashDedupCluster``                       1 task (datatrove requires world_size == 1)
4. filter:     ``ParquetReader -> MinhashDedupFilter -> ParquetWriter``  tasks = workers (same sharding as 1)

``MinhashConfig(n_grams=5, num_buckets=B, hashes_per_bucket=R)``; everything else is datatrove's default
(64-bit xxhash shingles, seed 1, ``TextNormConfig()``: lower-case, punctuation -> space, digits -> 0,
diacritics folded; English word tokenizer = spaCy ``blank("en")``). Without ``--buckets`` /
``--hashes-per-bucket`` the whole default config is used (14 buckets x 8 hashes).

``--limit N`` takes the first N documents in input order (files sorted by name, rows in order) and writes
them, untimed, into a temp folder as 16 Parquet files of consecutive documents (as ``planted_corpus.py``
splits a corpus); the truth is restricted to those documents (a planted copy always comes after its
original, so every copy in the subset has its original there too).

Recall, as ``benchmarks/dedup_scale.py``'s ``recall()`` (MinHash part): a planted near copy of exact word
5-gram Jaccard >= 0.8 must be removed (``near_recall_j08``) and its original kept (``originals_kept``; an
original that is a URL-duplicate loser counts as kept, as there), and ``other_documents_removed`` counts base
documents gone though neither a planted near copy nor a URL-duplicate loser (false positives). Extra, since
datatrove does not keep the earliest document of a cluster (it keeps the union-find root: the larger set,
ties to the lower (task, doc index) pair, and tasks get interleaved files): ``pairs_j08_resolved`` = the
fraction of those pairs with exactly one of the two documents removed, whichever.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- shared helpers (also used by datasketch_lsh.py)


def input_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("in-*.parquet"))
    if not files:
        sys.exit(f"no in-*.parquet in {folder}")
    return files


def read_ids(folder: Path, limit: int | None = None) -> list[str]:
    """Document ids in input order (files sorted by name, rows in order), the first ``limit`` of them."""
    ids: list[str] = []
    for f in input_files(folder):
        ids += pq.read_table(f, columns=["id"]).column("id").to_pylist()
        if limit is not None and len(ids) >= limit:
            return ids[:limit]
    return ids


def write_subset(folder: Path, limit: int, out: Path, files: int = 16) -> int:
    """The first ``limit`` documents of ``folder`` (input order) as ``out/in-NNN.parquet``, ``files`` files of
    consecutive documents. Returns the number of documents written."""
    tables, n = [], 0
    for f in input_files(folder):
        t = pq.read_table(f)
        tables.append(t.slice(0, limit - n))
        n += tables[-1].num_rows
        if n >= limit:
            break
    table = pa.concat_tables(tables)
    out.mkdir(parents=True, exist_ok=True)
    total = table.num_rows
    for i in range(files):
        lo, hi = i * total // files, (i + 1) * total // files
        pq.write_table(table.slice(lo, hi - lo), out / f"in-{i:03d}.parquet", compression="zstd")
    return total


def kept_ids_from_parquet(folder: Path) -> set[str]:
    table = ds.dataset(str(folder), format="parquet", exclude_invalid_files=True).to_table(columns=["id"])
    return set(table.column("id").to_pylist())


def minhash_recall(truth: dict, ids: list[str], kept: set[str]) -> dict:
    """Recall of the planted near copies among the documents ``ids`` (a prefix of the corpus, or all of it),
    given the ids that survived; same definitions as dedup_scale.recall() (its MinHash part)."""
    present = set(ids)
    url_losers = {b for _, b in truth["url_duplicates"]}
    pairs = [(a, b, j) for a, b, j in truth["near_pairs"] if b in present]
    assert all(a in present for a, _, _ in pairs), "a planted copy without its original in the input"
    high = [(a, b) for a, b, j in pairs if j >= 0.8]
    found = sum(1 for a, b in high if b not in kept)
    originals_kept = sum(1 for a, b in high if a in kept or a in url_losers)
    originals_kept_strict = sum(1 for a, b in high if a in kept)
    resolved = sum(1 for a, b in high if (a in kept) != (b in kept))
    both_removed = sum(1 for a, b in high if a not in kept and b not in kept)
    near_ids = {b for _, b, _ in truth["near_pairs"]}
    planted = url_losers | near_ids
    base = [i for i in ids if i.startswith("d")]
    base_removed = sum(1 for i in base if i not in kept and i not in planted)
    # of those: originals of a planted copy (the copy was kept in their place, or both went) and the rest,
    # base documents with no planted relation at all (false positives proper)
    originals = {a for a, _, _ in pairs}
    originals_removed = sum(1 for i in base if i not in kept and i not in planted and i in originals)
    # removal rate of planted copies by Jaccard band (how the LSH S-curve shows on this corpus)
    bands = defaultdict(lambda: [0, 0])
    for _a, b, j in pairs:
        lo = min(int(j * 20) / 20, 0.95)
        bands[f"{lo:.2f}-{lo + 0.05:.2f}"][0] += 1
        bands[f"{lo:.2f}-{lo + 0.05:.2f}"][1] += b not in kept
    r = lambda x: round(x / len(high), 4) if high else None  # noqa: E731
    return {
        "documents": len(ids), "kept": len(kept & present), "removed": len(present - kept),
        "near_pairs": len(pairs), "near_pairs_j08": len(high),
        "near_recall_j08": r(found), "originals_kept": r(originals_kept),
        "originals_kept_strict": r(originals_kept_strict),
        "pairs_j08_resolved": r(resolved), "pairs_j08_both_removed": both_removed,
        "other_documents_removed": base_removed,
        "other_documents_removed_originals": originals_removed,
        "other_documents_removed_unrelated": base_removed - originals_removed,
        "copies_removed_by_jaccard": {k: {"pairs": v[0], "removed": v[1]} for k, v in sorted(bands.items())},
    }


class TreeMemory:
    """Peak resident memory of this process (unless ``include_self`` is false) and all its descendants
    (sampled from /proc every 0.5 s): the largest single process and the largest sum."""

    def __init__(self, interval: float = 0.5, include_self: bool = True):
        self.interval = interval
        self.include_self = include_self
        self.peak_process_mb = 0.0
        self.peak_total_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        parent: dict[int, int] = {}
        rss: dict[int, float] = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                ppid = vm = None
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        if line.startswith("PPid:"):
                            ppid = int(line.split()[1])
                        elif line.startswith("VmRSS:"):
                            vm = int(line.split()[1]) / 1024
                if ppid is not None:
                    parent[int(pid)] = ppid
                    rss[int(pid)] = vm or 0.0
            except (OSError, ValueError):
                pass
        me = os.getpid()
        tree = []
        for pid in rss:
            p, depth = pid, 0
            while p and p != me and depth < 64:
                p, depth = parent.get(p, 0), depth + 1
            if p == me and (pid != me or self.include_self):
                tree.append(rss[pid])
        if tree:
            self.peak_process_mb = max(self.peak_process_mb, max(tree))
            self.peak_total_mb = max(self.peak_total_mb, sum(tree))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        return {"peak_process_rss_mb": round(self.peak_process_mb, 1), "peak_tree_rss_mb": round(self.peak_total_mb, 1)}


def machine() -> str:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = " " + line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU {platform.machine()}{model}"


def text_bytes(folder: Path) -> int:
    """UTF-8 bytes of all texts (as truth.json's text_bytes)."""
    return sum(pc.sum(pc.binary_length(pq.read_table(f, columns=["text"]).column("text"))).as_py() or 0
               for f in input_files(folder))


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ---------------------------------------------------------------- datatrove run


def step_counters(stats) -> dict:
    """datatrove PipelineStats -> {step name: {counter: total}}"""
    out = {}
    for s in getattr(stats, "stats", []) or []:
        counters = {k: (v.total if hasattr(v, "total") else v) for k, v in s.stats.items()}
        out[s.name] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in counters.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="a planted corpus folder (in-NNN.parquet + truth.json)")
    parser.add_argument("--buckets", type=int, help="MinhashConfig.num_buckets (default: datatrove's, 14)")
    parser.add_argument("--hashes-per-bucket", type=int, help="MinhashConfig.hashes_per_bucket (default: 8)")
    parser.add_argument("--workers", type=int, default=2, help="processes (and tasks of stages 1 and 4)")
    parser.add_argument("--limit", type=int, help="only the first N documents in input order")
    parser.add_argument("--work", help="folder for the temp dir (default: system temp)")
    parser.add_argument("--keep-work", action="store_true", help="keep the temp dir (printed to stderr)")
    parser.add_argument("--save-removed", help="write the removed ids, one per line, to this file")
    args = parser.parse_args()

    corpus = Path(args.input)
    truth = json.loads((corpus / "truth.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="dt-minhash-", dir=args.work))
    try:
        t0 = time.time()
        if args.limit is not None and args.limit < truth["documents"]:
            data = tmp / "input"
            write_subset(corpus, args.limit, data)
        else:
            data = corpus
        ids = read_ids(data)
        n = len(ids)
        prepare = time.time() - t0

        t_import = time.perf_counter()
        from datatrove.executor import LocalPipelineExecutor
        from datatrove.pipeline.dedup.minhash import (
            MinhashConfig,
            MinhashDedupBuckets,
            MinhashDedupCluster,
            MinhashDedupFilter,
            MinhashDedupSignature,
        )
        from datatrove.pipeline.readers import ParquetReader
        from datatrove.pipeline.writers import ParquetWriter
        import_seconds = time.perf_counter() - t_import
        from importlib.metadata import version

        kw = {}
        if args.buckets is not None:
            kw["num_buckets"] = args.buckets
        if args.hashes_per_bucket is not None:
            kw["hashes_per_bucket"] = args.hashes_per_bucket
        config = MinhashConfig(n_grams=5, **kw)
        nb, hb = config.num_buckets, config.hashes_per_bucket

        def reader():
            return ParquetReader(str(data), text_key="text", id_key="id", glob_pattern="in-*.parquet")

        sigs, dups, removes, out, logs = (tmp / x for x in ("signatures", "buckets", "remove_ids", "output", "logs"))
        stages = [
            ("signatures", [reader(), MinhashDedupSignature(output_folder=str(sigs), config=config)],
             args.workers, args.workers),
            ("buckets", [MinhashDedupBuckets(input_folder=str(sigs), output_folder=str(dups), config=config)],
             nb, min(args.workers, nb)),
            ("cluster", [MinhashDedupCluster(input_folder=str(dups), output_folder=str(removes), config=config)],
             1, 1),
            ("filter", [reader(), MinhashDedupFilter(input_folder=str(removes)),
                        ParquetWriter(output_folder=str(out), compression="zstd")],
             args.workers, args.workers),
        ]
        wall: dict[str, float] = {}
        counters: dict[str, dict] = {}
        intermediate: dict[str, int] = {}
        with TreeMemory() as mem:
            for name, pipeline, tasks, workers in stages:
                executor = LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers,
                                                 logging_dir=str(logs / name))
                t = time.perf_counter()
                stats = executor.run()
                wall[name] = time.perf_counter() - t
                counters[name] = step_counters(stats)
                print(f"[datatrove-minhash] {name}: {wall[name]:.1f} s", file=sys.stderr, flush=True)
        for name, folder in (("signatures", sigs), ("buckets", dups), ("remove_ids", removes)):
            intermediate[name] = folder_bytes(folder)

        kept = kept_ids_from_parquet(out)
        scores = minhash_recall(truth, ids, kept)
        if args.save_removed:
            Path(args.save_removed).write_text("".join(f"{i}\n" for i in ids if i not in kept))
        total = sum(wall.values())
        report = {
            "tool": "datatrove", "datatrove": version("datatrove"),
            "date": time.strftime("%Y-%m-%d"), "machine": machine(),
            "python": platform.python_version(),
            "input": str(corpus), "limit": args.limit, "docs": n,
            "text_mb": round(text_bytes(data) / 1e6, 1),
            "config": {"n_grams": config.n_grams, "num_buckets": nb, "hashes_per_bucket": hb,
                       "num_hashes": nb * hb, "seed": config.seed, "hash_config": str(config.hash_config),
                       "norm_config": vars(config.norm_config), "default_config": not kw,
                       "lsh_threshold_approx": round((1 / nb) ** (1 / hb), 3)},
            "workers": args.workers,
            "tasks": {name: tasks for name, _, tasks, _ in stages},
            "prepare_seconds_untimed": round(prepare, 1),
            "import_seconds_untimed": round(import_seconds, 2),
            "wall_seconds": {k: round(v, 1) for k, v in wall.items()},
            "wall_seconds_total": round(total, 1),
            "docs_per_second": round(n / total, 1),
            "docs_per_second_per_core": round(n / total / args.workers, 1),
            "signature_stage_docs_per_second_per_core": round(n / wall["signatures"] / args.workers, 1),
            **mem.report(),
            "intermediate_bytes_per_doc": {k: round(v / n, 1) for k, v in intermediate.items()},
            "datatrove_counters": counters,
            **scores,
        }
        print(json.dumps(report, indent=2))
    finally:
        if args.keep_work:
            print(f"[datatrove-minhash] work kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
