"""What a crash costs: an uninterrupted `--stage all` run, then the same run killed (kill -9 of its
process group) once half of the input files are done and re-run, then a re-run of the finished output.

    .venv/bin/python benchmarks/resume_cost.py [--copies 2] [--workers 2]

Inputs: the bundled sample WARCs, each linked `--copies` times under different names. Reports wall
times, the work redone after the kill, and the workers' peak RSS from .refinedweb/stats.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLES = REPO / "refinedweb" / "resources" / "samples"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = tmp / "inputs"
        inputs.mkdir()
        for copy in range(args.copies):
            for path in sorted(SAMPLES.glob("*.warc.gz")):
                (inputs / f"{copy}-{path.name}").symlink_to(path)
        files = len(list(inputs.iterdir()))

        def command(out: Path) -> list[str]:
            return [sys.executable, "-m", "refinedweb", "run", "--stage", "all", "--workers", str(args.workers),
                    "--input", str(inputs), "--output", str(out),
                    "--set", "url_filter.blocklist=[package:demo_blocklist.txt]", "--set", "dedup.parts=4"]

        def timed(out: Path) -> float:
            start = time.perf_counter()
            subprocess.run(command(out), check=True, capture_output=True, cwd=REPO)
            return time.perf_counter() - start

        whole = timed(tmp / "whole")
        stats = json.loads((tmp / "whole" / "filtered" / ".refinedweb/stats.json").read_text())
        dedup_stats = json.loads((tmp / "whole" / "dedup" / ".refinedweb/stats.json").read_text())

        out = tmp / "killed"
        start = time.perf_counter()
        proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                                start_new_session=True)
        done = out / "filtered" / ".refinedweb/done"
        while proc.poll() is None and len(list(done.glob("*.json")) if done.exists() else []) < files // 2:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        until_kill = time.perf_counter() - start
        files_done_at_kill = len(list(done.glob("*.json")))
        resumed = timed(out)
        noop = timed(out)

    result = {
        "input_files": files, "workers": args.workers, "records": stats["totals"]["records"],
        "uninterrupted_seconds": round(whole, 1),
        "killed_after_seconds": round(until_kill, 1), "files_done_at_kill": files_done_at_kill,
        "rerun_after_kill_seconds": round(resumed, 1),
        "crash_overhead_seconds": round(until_kill + resumed - whole, 1),
        "rerun_of_finished_output_seconds": round(noop, 1),
        "filter_worker_peak_rss_mb": stats["worker_peak_rss_mb"],
        "dedup_worker_peak_rss_mb": dedup_stats["worker_peak_rss_mb"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
