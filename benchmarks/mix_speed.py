"""`refinedweb mix` throughput and memory: three synthetic sources (web with token_count; books without,
so its GPT-2 tokens are counted; code), mixed into 32 MB shards with embedded Ray.

    .venv/bin/python benchmarks/mix_speed.py [--web-docs 60000] [--workers 2]

Reports wall time, input and output MB/s, tokens/s and the workers' peak RSS (a source is read row
group by row group, so memory stays flat as sources grow).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def make(folder: Path, docs: int, seed: int, files: int, token_count: bool) -> int:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(20000)])
    size = 0
    for f in range(files):
        n = docs // files
        texts = [" ".join(rng.choice(words, size=int(rng.integers(100, 800)))) for _ in range(n)]
        columns = {"id": [f"{seed}-{f}-{i}" for i in range(n)], "text": texts}
        if token_count:
            columns["token_count"] = pa.array([len(t.split()) * 2 for t in texts], pa.int32())
        path = folder / f"part-{f}.parquet"
        pq.write_table(pa.table(columns), path, row_group_size=2000)
        size += path.stat().st_size
    return size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--web-docs", type=int, default=60000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes = {"web": make(tmp / "web", args.web_docs, 1, 6, True),
                 "books": make(tmp / "books", args.web_docs // 10, 2, 2, False),
                 "code": make(tmp / "code", args.web_docs // 10, 3, 2, True)}
        config = tmp / "mix.yaml"
        config.write_text(yaml.safe_dump({"mix": {"total_tokens": int(args.web_docs * 450 * 2 * 0.8), "seed": 0,
                                                  "shard_max_bytes": 32 << 20, "sources": [
            {"name": "web", "input": str(tmp / "web"), "weight": 0.8},
            {"name": "books", "input": str(tmp / "books"), "weight": 0.12, "max_epochs": 2},
            {"name": "code", "input": str(tmp / "code"), "weight": 0.08, "max_epochs": 2}]}}))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "refinedweb", "mix", "--config", str(config), "--output",
                        str(tmp / "out"), "--workers", str(args.workers)], check=True, capture_output=True, cwd=REPO)
        wall = time.perf_counter() - start
        report = json.loads((tmp / "out" / "mix_report.json").read_text())
    result = {"input_mb": round(sum(sizes.values()) / 1e6, 1), "output_mb": round(report["bytes"] / 1e6, 1),
              "tokens": report["total_tokens"], "documents": report["documents"], "shards": report["shards"],
              "wall_seconds": round(wall, 1), "output_mb_per_s": round(report["bytes"] / 1e6 / wall, 2),
              "tokens_per_s": round(report["total_tokens"] / wall), "worker_peak_rss_mb": report["worker_peak_rss_mb"],
              "shares": {s["name"]: s["share"] for s in report["sources"]},
              "epochs": {s["name"]: s["epochs"] for s in report["sources"]}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
