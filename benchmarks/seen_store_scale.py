"""The seen-URL store at scale: a synthetic contribution of 200M URL hashes written through the real phases, then
URL-dedup bucket tasks of a new run reading it; time and peak memory per task, and the result checked.

    .venv/bin/python benchmarks/seen_store_scale.py [--store-urls 200000000] [--run-urls 2000000]
        [--worker-memory-mb 2000] [--dir DIR]

Write: an earlier run's kept URLs (`--store-urls` random 64-bit hashes in 40 parts, as `finish_part` leaves them:
one file per part by key range of the contribution) -> `store_range` units (one per key range, each in a fresh
process, so its peak RSS is its own) -> `seen_store.commit`. Read: a new run of `--run-urls` URLs, half of them
in the store, in 4 parts, its bucket tasks (`url_bucket`) with 4 buckets (the least a 4-part run gets: each
reads a quarter of the store, in chunks), 256 and 8,192 (the cap; 16 of them timed), each in a fresh process.
Every seen URL must be found, no other. Memory: ru_maxrss of each task's process, against the task budget
((run.worker_memory_mb - 400) / 2) and run.worker_memory_mb.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from refinedweb.config import load_config  # noqa: E402
from refinedweb.dedup import seen_store  # noqa: E402
from refinedweb.dedup.corpus import Corpus  # noqa: E402
from refinedweb.dedup.methods import url  # noqa: E402
from refinedweb.dedup.output import KEPT_URL, KEPT_URLS  # noqa: E402
from refinedweb.dedup.plan import CORPUS, WORK  # noqa: E402
from refinedweb.dedup.shuffle import BucketWriter, key_range, task_budget_bytes, write_segment_table  # noqa: E402
from refinedweb.io.storage import open_storage  # noqa: E402


def in_fresh_process(fn, *args):
    """Run fn(*args) in a new process; its result and the process's peak RSS (MB)."""
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_measured, (fn, args))


def _measured(fn, args):
    t0 = time.perf_counter()
    result = fn(*args)
    return result, round(time.perf_counter() - t0, 2), round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_work(out: Path, documents: int, parts: int, buckets: dict) -> None:
    storage = open_storage(str(out))
    corpus = Corpus(("synthetic",), (documents,), parts, buckets=buckets)
    storage.write_text(CORPUS, corpus.to_json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store-urls", type=int, default=200_000_000)
    parser.add_argument("--run-urls", type=int, default=2_000_000)
    parser.add_argument("--worker-memory-mb", type=int, default=2000)
    parser.add_argument("--dir", help="work folder (default: a temporary one, deleted)")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="seen-store-bench-"))
    store = root / "store"
    cfg = load_config(overrides=[f"dedup.url.seen={store}", f"run.worker_memory_mb={args.worker_memory_mb}"])
    budget = task_budget_bytes(cfg)
    report: dict = {"store_urls": args.store_urls, "run_urls": args.run_urls, "worker_memory_mb": args.worker_memory_mb,
                    "task_budget_mb": budget >> 20}
    try:
        # ---- write the store (the earlier run's contribution)
        out = root / "earlier"
        parts = 40
        ranges = url.store_ranges(cfg, Corpus(("x",), (args.store_urls,), parts), budget)
        write_work(out, args.store_urls, parts, {"url_store": ranges})
        storage = open_storage(str(out))
        rng = np.random.default_rng(1)
        counts = np.zeros((parts, ranges), dtype=np.int64)
        t0 = time.perf_counter()
        sample = []
        for p in range(parts):
            records = np.zeros(args.store_urls // parts, KEPT_URL)
            records["key"] = rng.integers(0, 2**64 - 1, len(records), dtype=np.uint64, endpoint=True)
            sample.append(records["key"][:args.run_urls // 2 // parts].copy())
            writer = BucketWriter(storage, KEPT_URLS, p, ranges, KEPT_URL)
            writer.add(records, key_range(records["key"], ranges))
            counts[p] = writer.close()
            del records
        write_segment_table(storage, KEPT_URLS, counts)
        prepare = time.perf_counter() - t0
        seen = seen_store.plan(str(store), f"{out}/dedup")
        t0 = time.perf_counter()
        written, tasks = [], []
        for r in range(ranges):
            result, seconds, peak = in_fresh_process(url.store_range, r, seen, cfg, str(out))
            written.append(result)
            tasks.append({"seconds": seconds, "peak_rss_mb": peak, "urls": result["urls"]})
        record = seen_store.commit(seen_store.open_store(str(store)), seen, written, f"{out}/dedup")
        shutil.rmtree(out / "_work")
        report["write"] = {"ranges": ranges, "urls": record["urls"], "prepare_seconds": round(prepare, 1),
                           "seconds": round(time.perf_counter() - t0, 1),
                           "task_seconds_max": max(t["seconds"] for t in tasks),
                           "task_peak_rss_mb_max": max(t["peak_rss_mb"] for t in tasks),
                           "store_bytes": sum(p.stat().st_size for p in store.rglob("*") if p.is_file())}

        # ---- a new run reads it
        known = np.unique(np.concatenate(sample))
        new = rng.integers(0, 2**64 - 1, args.run_urls - len(known), dtype=np.uint64, endpoint=True)
        run_keys = np.concatenate([known, new])
        rng.shuffle(run_keys)
        report["read"] = []
        for buckets in (4, 256, 8192):             # few, as the run's plan gives; 64 per part; the cap
            out = root / f"new-{buckets}"
            run_parts = 4
            write_work(out, len(run_keys), run_parts, {"url": buckets})
            storage = open_storage(str(out))
            dtype = url.priority_dtype(None)
            counts = np.zeros((run_parts, buckets), dtype=np.int64)
            per = -(-len(run_keys) // run_parts)
            for p in range(run_parts):
                keys = run_keys[p * per:(p + 1) * per]
                records = np.zeros(len(keys), dtype)
                records["key"], records["row"] = keys, np.arange(len(keys), dtype=np.uint32)
                writer = BucketWriter(storage, f"{WORK}/url/records", p, buckets, dtype)
                writer.add(records, key_range(keys, buckets))
                counts[p] = writer.close()
            write_segment_table(storage, f"{WORK}/url/records", counts)
            t0 = time.perf_counter()
            slices = seen_store.bucket_slices(seen_store.open_store(str(store)), [record], buckets)
            slicing = time.perf_counter() - t0
            per_bucket = counts.sum(axis=0)
            checked = list(range(buckets)) if buckets <= 64 else list(range(0, buckets, buckets // 16))
            found = 0
            task_stats = []
            for b in checked:
                passes = max(1, -(-int(per_bucket[b]) * url.BUCKET_BYTES // budget))
                result, seconds, peak = in_fresh_process(url.url_bucket, b, passes, slices[b], None, cfg, str(out))
                found += result["seen_in_earlier_runs"]
                task_stats.append({"seconds": seconds, "peak_rss_mb": peak,
                                   "store_slice_mb": round(sum(n for _, _, n in slices[b]) * 8 / 2**20, 1)})
            expected = int(np.isin(run_keys[np.isin(key_range(run_keys, buckets), checked)], known).sum())
            assert found == expected, (found, expected)
            report["read"].append({"buckets": buckets, "buckets_timed": len(checked), "slices_seconds": round(slicing, 2),
                                   "seen_found": found, "seen_expected": expected,
                                   "store_slice_mb_max": max(t["store_slice_mb"] for t in task_stats),
                                   "task_seconds_max": max(t["seconds"] for t in task_stats),
                                   "task_seconds_mean": round(float(np.mean([t["seconds"] for t in task_stats])), 2),
                                   "task_peak_rss_mb_max": max(t["peak_rss_mb"] for t in task_stats)})
            shutil.rmtree(out)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
