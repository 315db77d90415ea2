"""Filter-stage throughput on one core: the per-file pass in this process (what one Ray worker does),
and the whole CLI with `--workers 1` (Ray start-up and model loading included).

    .venv/bin/python benchmarks/filter_speed.py [--warc benchmarks/data/bench.warc.gz] [--set KEY=VALUE ...]

Prints JSON: records, pages, kept, seconds, records/s, per-stage seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"


def ensure_bench_warc(path: Path, pages: int, seed: int | None = None, mix: str = "uniform") -> Path:
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "build_bench_warc.py"), "--out", str(path), "--pages", str(pages),
                        *(["--seed", str(seed)] if seed is not None else []), "--mix", mix], check=True, capture_output=True)
    return path


def blocklist_override() -> list[str]:
    full = SHARED / "blocklists" / "datatrove_fineweb" / "url_filterblacklistsv0_3_0.tar.gz"
    return [f"url_filter.blocklist=[{full if full.exists() else 'package:demo_blocklist.txt'}]"]


def in_process(warc: Path, overrides: list[str]) -> dict:
    from refinedweb.config import load_config
    from refinedweb.runtime.filter_pass import Pipeline, filter_file
    from refinedweb.stages.blocklist import load_blocklist

    cfg = load_config(overrides=blocklist_override() + overrides)
    t0 = time.perf_counter()
    blocklist = load_blocklist(cfg["url_filter"]["blocklist"], cfg["url_filter"]["categories"])
    stages = Pipeline.build(cfg, blocklist)
    setup = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = filter_file(str(warc), cfg, out, stages)
        seconds = time.perf_counter() - t0
    pages = result["stages"]["read"]["kept"]
    return {
        "mode": "in-process (one worker)",
        "records": result["records"], "html_pages": pages, "kept": result["kept"],
        "setup_seconds": round(setup, 2), "seconds": round(seconds, 2),
        "records_per_second": round(result["records"] / seconds, 1),
        "pages_per_second": round(pages / seconds, 1),
        "stage_seconds": {k: round(v["seconds"], 2) for k, v in result["stages"].items()},
        "stage_docs_in": {k: v["docs_in"] for k, v in result["stages"].items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def via_cli(warc: Path, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = [str(REPO / ".venv" / "bin" / "refinedweb"), "run", "--stage", "filter", "--workers", "1",
                "--input", str(warc), "--output", out]
        for o in blocklist_override() + overrides:
            args += ["--set", o]
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        stats = json.loads((Path(out) / "filtered" / ".refinedweb/stats.json").read_text())
    records = stats["totals"]["records"]
    return {"mode": "CLI --workers 1 (Ray start-up included)", "records": records, "kept": stats["totals"]["kept"],
            "wall_seconds": round(wall, 2), "records_per_second": round(records / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warc", default=str(HERE / "data" / "bench.warc.gz"))
    parser.add_argument("--pages", type=int, default=1500)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--cli", action="store_true", help="also time the CLI end to end")
    args = parser.parse_args()
    warc = ensure_bench_warc(Path(args.warc), args.pages)
    results = [in_process(warc, args.overrides)]
    if args.cli:
        results.append(via_cli(warc, args.overrides))
    print(json.dumps({"warc": str(warc), "overrides": args.overrides, "cpu": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
