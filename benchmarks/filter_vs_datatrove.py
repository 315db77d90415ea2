"""The filter stage against datatrove on mixed crawls, end to end, one worker, back to back.

For every size and seed: a WARC of that many HTML responses drawn from all of the shared pages
(`build_bench_warc.py --seed`: old and new crawls, both extraction benchmarks, many languages), then
`refinedweb run --stage filter --workers 1` and datatrove 0.10.1's same chain (`datatrove_baseline.py`,
run with the venv of `setup_datatrove_venv.sh`), alternating which goes first. Wall time is the whole
process (interpreter, imports, Ray or not, models, blocklists, the run, the exit).

    .venv/bin/python benchmarks/filter_vs_datatrove.py --sizes 1500 6000 --seeds 1 2 3 [--out results.json]

Prints (stderr) one JSON row per run as it ends, then (stdout) the report: seconds, records/s, speed-up, kept documents, time per stage
(ours), peak RSS of our worker and driver and of datatrove's process and its extraction child.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATATROVE_PYTHON = REPO / ".venv-bench-datatrove" / "bin" / "python"
sys.path.insert(0, str(HERE))
from filter_speed import blocklist_override, ensure_bench_warc  # noqa: E402


def timed(args: list[str], **kwargs) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MiB) of the process and the children it waited for, stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}):\n{text[-3000:]}")
    return wall, usage.ru_maxrss // 1024, text


def ours(warc: Path) -> dict:
    with tempfile.TemporaryDirectory() as out:
        wall, rss, _ = timed([str(REPO / ".venv" / "bin" / "refinedweb"), "run", "--stage", "filter", "--workers", "1",
                              "--input", str(warc), "--output", out, *[a for o in blocklist_override() for a in ("--set", o)]])
        stats = json.loads((Path(out) / "filtered" / ".refinedweb" / "stats.json").read_text())
    return {"tool": "refinedweb", "wall_seconds": round(wall, 2), "records": stats["totals"]["records"],
            "kept": stats["totals"]["kept"], "tokens": stats["totals"]["tokens"],
            "task_seconds": stats["files"][0]["seconds"],
            "stage_seconds": {k: round(v["seconds"], 2) for k, v in stats["stages"].items()},
            "stage_docs_in": {k: v["docs_in"] for k, v in stats["stages"].items()},
            "worker_peak_rss_mb": stats["worker_peak_rss_mb"], "driver_peak_rss_mb": rss}


def datatrove(warc: Path) -> dict:
    with tempfile.TemporaryDirectory() as work:
        wall, _, _ = timed([str(DATATROVE_PYTHON), str(HERE / "datatrove_baseline.py"), "--warc", str(warc),
                            "--work-dir", f"{work}/run", "--cache-dir", str(HERE / "data" / "datatrove-cache"),
                            "--json-out", f"{work}/result.json"])
        result = json.loads(Path(f"{work}/result.json").read_text())
    return {"tool": "datatrove", "wall_seconds": round(wall, 2), "records": result["docs_read"],
            "kept": result["docs_kept"], "peak_rss_mb": result["peak_rss_mib"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1500, 6000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not DATATROVE_PYTHON.exists():
        raise SystemExit(f"no datatrove venv at {DATATROVE_PYTHON}: run benchmarks/setup_datatrove_venv.sh")
    rows, summary = [], []
    for size in args.sizes:
        for seed in args.seeds:
            warc = ensure_bench_warc(HERE / "data" / f"mix-{size}-s{seed}.warc.gz", size, seed)
            runners = [ours, datatrove] if seed % 2 else [datatrove, ours]
            pair = {}
            for runner in runners:
                row = {"size": size, "seed": seed, **runner(warc)}
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
                pair[row["tool"]] = row
            summary.append({"size": size, "seed": seed, "ours_s": pair["refinedweb"]["wall_seconds"],
                            "datatrove_s": pair["datatrove"]["wall_seconds"],
                            "speedup": round(pair["datatrove"]["wall_seconds"] / pair["refinedweb"]["wall_seconds"], 2),
                            "kept_ours": pair["refinedweb"]["kept"], "kept_datatrove": pair["datatrove"]["kept"]})
            print(json.dumps(summary[-1]), file=sys.stderr, flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}",
              "rows": rows, "summary": summary}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
