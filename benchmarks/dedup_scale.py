"""The whole dedup stage on a synthetic corpus of N documents: wall time, docs/s and peak memory per
worker process, through the CLI on embedded Ray.

    .venv/bin/python benchmarks/dedup_scale.py --docs 50000 [--parts 1] [--workers 2]

Documents: 250–450 words drawn from a Zipf vocabulary of 60,000 pseudo-words; 5% are near copies
(2% of words replaced) of an earlier document; 2% carry one of 200 repeated 80-word passages; 1% repeat
an earlier URL. Peak memory is the largest resident set any Ray worker reached (sampled from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def synth_corpus(n: int, folder: Path, seed: int = 0, files: int = 8) -> int:
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgkqjxz"))
    vocab = ["".join(rng.choice(letters, size=int(rng.integers(2, 10)))) for _ in range(60_000)]
    vocab = np.array(vocab, dtype=object)
    passages = [" ".join(vocab[rng.zipf(1.3, size=80) % len(vocab)]) for _ in range(200)]
    texts, urls = [], []
    for i in range(n):
        r = rng.random()
        if r < 0.05 and i > 10:
            src = texts[int(rng.integers(0, i))].split()
            mask = rng.random(len(src)) < 0.02
            for j in np.flatnonzero(mask):
                src[j] = vocab[int(rng.integers(0, len(vocab)))]
            texts.append(" ".join(src))
        else:
            words = vocab[rng.zipf(1.3, size=int(rng.integers(250, 450))) % len(vocab)]
            text = " ".join(words)
            if r > 0.98:
                text = text + " " + passages[int(rng.integers(0, len(passages)))]
            texts.append(text)
        urls.append(urls[int(rng.integers(0, i))] if (rng.random() < 0.01 and i) else f"https://s{i % 997}.example.org/p/{i}")
    size = 0
    for f in range(files):
        lo, hi = f * n // files, (f + 1) * n // files
        table = pa.table({"id": [f"d{i}" for i in range(lo, hi)], "url": urls[lo:hi], "text": texts[lo:hi]})
        pq.write_table(table, folder / f"in-{f:03d}.parquet")
        size += sum(len(t) for t in texts[lo:hi])
    return size


def sample_worker_rss(stop: threading.Event, peak: dict) -> None:
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
                if b"default_worker.py" not in cmd and not cmd.startswith(b"ray::"):
                    continue
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        peak["worker_rss_mb"] = max(peak.get("worker_rss_mb", 0), int(line.split()[1]) / 1024)
            except OSError:
                pass
        stop.wait(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--parts", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        t0 = time.time()
        chars = synth_corpus(args.docs, folder)
        gen = time.time() - t0
        peak: dict = {}
        stop = threading.Event()
        sampler = threading.Thread(target=sample_worker_rss, args=(stop, peak), daemon=True)
        sampler.start()
        t0 = time.time()
        result = subprocess.run([str(HERE.parent / ".venv" / "bin" / "refinedweb"), "run", "--stage", "dedup",
                                 "--workers", str(args.workers), "--input", str(folder), "--output", str(Path(tmp) / "out"),
                                 "--set", f"dedup.parts={args.parts}"], capture_output=True, text=True)
        wall = time.time() - t0
        stop.set()
        sampler.join()
        if result.returncode:
            sys.exit(result.stderr[-3000:])
        stats = json.loads((Path(tmp) / "out" / "dedup" / "_stats.json").read_text())
    print(json.dumps({"docs": args.docs, "text_mb": round(chars / 1e6, 1), "parts": args.parts, "workers": args.workers,
                      "generate_seconds": round(gen, 1), "wall_seconds": round(wall, 1),
                      "docs_per_second": round(args.docs / wall, 1),
                      "docs_per_second_per_core": round(args.docs / wall / args.workers, 1),
                      "peak_worker_rss_mb": round(peak.get("worker_rss_mb", 0), 1),
                      "docs_out": stats["totals"]["docs_out"], "stages": stats["stages"]}, indent=2))


if __name__ == "__main__":
    main()
