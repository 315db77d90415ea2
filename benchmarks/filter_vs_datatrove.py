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
import hashlib
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


def ours(warc: Path, tree: Path | None = None) -> dict:
    """Our filter stage; `tree`: another checkout of the code (a git worktree of an earlier commit) run with the
    same venv, for a before/after pair."""
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    with tempfile.TemporaryDirectory() as out:
        wall, rss, _ = timed([str(REPO / ".venv" / "bin" / "python"), "-m", "refinedweb", "run", "--stage", "filter",
                              "--workers", "1", "--input", str(warc), "--output", out,
                              *[a for o in blocklist_override() for a in ("--set", o)]], cwd=str(tree or REPO), env=env)
        stats = json.loads((Path(out) / "filtered" / ".refinedweb" / "stats.json").read_text())
        shards = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in (Path(out) / "filtered").rglob("*.parquet"))
    return {"tool": "refinedweb" if tree is None else "refinedweb-before", "wall_seconds": round(wall, 2),
            "shards_sha256": hashlib.sha256("".join(shards).encode()).hexdigest(), "records": stats["totals"]["records"],
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
    parser.add_argument("--mixes", nargs="+", default=["uniform"], choices=["uniform", "big", "news"],
                        help="how the mixes are built (build_bench_warc.py --mix)")
    parser.add_argument("--before", metavar="REV", help="also run our filter at this commit (a git worktree), same venv")
    args = parser.parse_args()
    before = None
    if args.before:
        before = Path(tempfile.gettempdir()) / f"refinedweb-before-{args.before}"
        if not before.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(before), args.before],
                           check=True, capture_output=True)
    if not DATATROVE_PYTHON.exists():
        raise SystemExit(f"no datatrove venv at {DATATROVE_PYTHON}: run benchmarks/setup_datatrove_venv.sh")
    rows, summary = [], []
    for mix in args.mixes:
        for size in args.sizes:
            for seed in args.seeds:
                name = f"mix-{size}-s{seed}" + ("" if mix == "uniform" else f"-{mix}")
                warc = ensure_bench_warc(HERE / "data" / f"{name}.warc.gz", size, seed, mix)
                runners = [ours, datatrove] if seed % 2 else [datatrove, ours]
                if before is not None:
                    runners.insert(1, lambda w: ours(w, before))
                pair = {}
                for runner in runners:
                    row = {"mix": mix, "size": size, "seed": seed, **runner(warc)}
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
                    pair[row["tool"]] = row
                dt_s, ours_row = pair["datatrove"]["wall_seconds"], pair["refinedweb"]
                summary.append({"mix": mix, "size": size, "seed": seed, "ours_s": ours_row["wall_seconds"],
                                "datatrove_s": dt_s, "speedup": round(dt_s / ours_row["wall_seconds"], 2),
                                "kept_ours": ours_row["kept"], "kept_datatrove": pair["datatrove"]["kept"]})
                if before is not None:
                    old = pair["refinedweb-before"]
                    summary[-1].update({"before_s": old["wall_seconds"], "speedup_before": round(dt_s / old["wall_seconds"], 2),
                                        "extract_s_before_after": [old["stage_seconds"].get("extract"),
                                                                   ours_row["stage_seconds"].get("extract")],
                                        "same_shards": old["shards_sha256"] == ours_row["shards_sha256"]})
                print(json.dumps(summary[-1]), file=sys.stderr, flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}",
              "rows": rows, "summary": summary}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
