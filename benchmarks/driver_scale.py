"""The dedup driver at the documented scale, without the data: planning a shuffle of 1,000 parts x 8,192 buckets
(the scans' results as the driver gets them) and a resume that reads 20,000 completion markers on S3 (moto).

    .venv/bin/python benchmarks/driver_scale.py [--parts 1000] [--buckets 8192] [--markers 20000]

Plan: `bucket_units` (the counts of every part per bucket -> passes per bucket and the segment table the bucket
tasks read) against the quadratic per-bucket sum it replaced (`before`, timed on a tenth of the parts and
scaled: it is linear in parts for each of the buckets). Driver RSS: the largest resident set of this process.
Resume: `StageState.completed()` over the markers a killed dump-scale run leaves: every finished phase in one
file, the phase in flight in files of BATCH markers plus fewer than BATCH loose ones; against one GET per marker
(`before`). moto answers in ~1 ms here, S3 in 10-30 ms: the reads are timed as they are and with `--latency-ms`
added to every request (a botocore hook that sleeps, as a network round trip would, without holding the GIL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from refinedweb.dedup.corpus import Corpus  # noqa: E402
from refinedweb.dedup.plan import DedupRun, bucket_units  # noqa: E402
from refinedweb.dedup.shuffle import pack_array, passes_for  # noqa: E402
from refinedweb.io.storage import open_storage  # noqa: E402
from refinedweb.runtime.run_state import DONE_DIR, StageState, marker_path  # noqa: E402
from refinedweb.runtime.units import BATCH  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class FinishedNone:
    def finished(self, name, keys) -> bool:
        return False


def bench_plan(parts: int, buckets: int) -> dict:
    rng = np.random.default_rng(0)
    per_bucket = 1_000_000 * 450 // buckets            # 1M documents a part, 450 band keys each
    scans = [{"part": p, "records": pack_array(rng.poisson(per_bucket, buckets).astype(np.uint64))}
             for p in range(parts)]
    before_rss = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(tmp)
        corpus = Corpus(("x",), (parts * 1_000_000,), parts, buckets={"minhash": buckets})
        ctx = DedupRun(units=FinishedNone(), cfg={}, uri=tmp, corpus=corpus, budget=800 << 20, log=print,
                       storage=storage, fetch=None)
        t0 = time.perf_counter()
        units = bucket_units(ctx, "minhash", "minhash-bucket", scans, 96)
        new = time.perf_counter() - t0
        table_bytes = os.path.getsize(Path(tmp) / "_work/dedup/minhash/records/segments.bin")
    # before: for every bucket, every part's counts summed up to the bucket (lists of Python ints, as markers gave them)
    sample = [{"part": s["part"], "records": np.frombuffer(__import__("zlib").decompress(
        __import__("base64").b64decode(s["records"])), "<u8").tolist()} for s in scans[:max(1, parts // 10)]]
    t0 = time.perf_counter()
    for b in range(buckets):
        segments = []
        for scan in sample:
            counts = scan["records"]
            if counts[b]:
                segments.append((int(scan["part"]), int(sum(counts[:b])), int(counts[b])))
        passes_for(sum(n for _, _, n in segments), 96, 800 << 20)
    before = (time.perf_counter() - t0) * parts / len(sample)
    return {"parts": parts, "buckets": buckets, "plan_seconds": round(new, 2), "segment_table_mb": round(table_bytes / 2**20, 1),
            "max_passes": max(n for _, n in units.values()), "before_seconds_estimated": round(before, 1),
            "driver_rss_mb": round(rss_mb(), 1), "rss_before_plan_mb": round(before_rss, 1)}


def bench_resume(markers: int, latency_ms: float) -> dict:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    sys.path.insert(0, str(HERE.parent / "tests"))
    from servers import moto_s3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # a killed run: 1,000 parts x 4 finished part phases, 2 x 4,000 finished bucket phases, one phase in flight
    phases = [(f"{name}-scan", 1000) for name in ("minhash", "exact", "url")] + [("exact-marks", 1000)]
    phases += [(f"{name}-bucket", 4000) for name in ("minhash", "exact")]
    in_flight = max(0, markers - sum(n for _, n in phases))
    result = {"seconds": 1.234, "part": 7, "records": pack_array(np.arange(16, dtype=np.uint64))}
    out: dict = {"markers": markers, "in_flight": in_flight, "latency_ms_added": latency_ms}
    with moto_s3() as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        storage = open_storage("s3://bench/out/")
        state = StageState(storage, "dedup", {"dedup": {}}, ("dedup",))
        keys = [f"{name}-p={i:05d}" for name, n in phases for i in range(n)] + \
            [f"url-bucket-b={i:05d}" for i in range(in_flight)]
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda key: storage.write_json(marker_path("dedup", key), result), keys))
        requests = {"n": 0}

        def slow(**kwargs) -> None:
            requests["n"] += 1
            time.sleep(latency_ms / 1000)

        def timed(label: str, fn, with_latency: bool) -> None:
            requests["n"] = 0
            if with_latency:
                storage.client.meta.events.register("before-send.s3", slow)
            t0 = time.perf_counter()
            got = fn()
            out[label] = round(time.perf_counter() - t0, 2)
            if with_latency:
                storage.client.meta.events.unregister("before-send.s3", slow)
                out[label.replace("seconds", "requests")] = requests["n"]
            assert len(got) == len(keys)

        def before():                            # one listing, then one GET per marker, one after another
            return {p: json.loads(storage.read_text(p)) for p in storage.list(f"dedup/{DONE_DIR}", "*.json")}

        for with_latency in (False, True):
            suffix = f"_with_{latency_ms:g}ms" if with_latency else ""
            timed(f"before_one_get_each_seconds{suffix}", before, with_latency)
            timed(f"all_loose_32_threads_seconds{suffix}", state.completed, with_latency)
        for name, n in phases:                   # as the driver leaves them
            state.consolidate(name, {f"{name}-p={i:05d}": result for i in range(n)})
        batches = in_flight // BATCH * BATCH
        for start in range(0, batches, BATCH):
            state.consolidate(f"url-bucket-{start}", {f"url-bucket-b={i:05d}": result for i in range(start, start + BATCH)})
        out["files_after_consolidation"] = len(storage.list(f"dedup/{DONE_DIR}", "*.json"))
        timed("consolidated_seconds", state.completed, False)
        timed(f"consolidated_seconds_with_{latency_ms:g}ms", state.completed, True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=1000)
    parser.add_argument("--buckets", type=int, default=8192)
    parser.add_argument("--markers", type=int, default=20000)
    parser.add_argument("--latency-ms", type=float, default=15.0)
    args = parser.parse_args()
    out = {"plan": bench_plan(args.parts, args.buckets), "resume_on_moto_s3": bench_resume(args.markers, args.latency_ms)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
