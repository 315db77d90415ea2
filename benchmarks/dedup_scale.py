"""The whole dedup stage on a planted corpus (benchmarks/planted_corpus.py): wall time, docs/s per core, peak
worker memory, recall of the planted duplicates, and the intermediate bytes of every phase, through the CLI
on embedded Ray.

    .venv/bin/python benchmarks/dedup_scale.py --docs 200000 --parts 16 [--workers 2] [--seed 0]
        [--corpus DIR]  (reuse a corpus built earlier)  [--set KEY=VALUE ...]

Recall: a planted near copy with exact 5-gram Jaccard >= 0.8 must be removed (its original kept); a
planted passage must be gone from every document that carried it. Peak memory is the largest resident
set any Ray worker reached (sampled from /proc every 0.5 s). Core-seconds per phase come from the
completion markers' `seconds`; intermediate bytes from the sizes under `_work/dedup/` (kept for the count).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.dataset as ds

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from planted_corpus import build  # noqa: E402


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


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def recall(truth: dict, out: Path) -> dict:
    table = ds.dataset(str(out / "dedup"), format="parquet", exclude_invalid_files=True).to_table(columns=["id"])
    kept = set(table.column("id").to_pylist())
    url_losers = {b for _, b in truth["url_duplicates"]}
    high = [(a, b) for a, b, j in truth["near_pairs"] if j >= 0.8]
    found = sum(1 for a, b in high if b not in kept)
    originals_kept = sum(1 for a, b in high if a in kept or a in url_losers)
    near_ids = {b for _, b, _ in truth["near_pairs"]}
    copies_of = defaultdict(list)
    for a, b, _ in truth["near_pairs"]:
        copies_of[a].append(b)
    holders = {i for c in truth["carriers"] for i in c}
    holders |= {b for a in list(holders) for b in copies_of.get(a, [])}
    texts = ds.dataset(str(out / "dedup"), format="parquet", exclude_invalid_files=True).to_table(
        columns=["id", "text"], filter=ds.field("id").isin(sorted(holders & kept)))
    by_id = dict(zip(texts.column("id").to_pylist(), texts.column("text").to_pylist()))
    cleared = left_in_copies = 0
    for passage, carriers in zip(truth["passages"], truth["carriers"]):
        probe = " ".join(passage.split()[20:60])
        cleared += all(probe not in by_id[c] for c in carriers if c in by_id)
        # a near copy that MinHash kept (J below the LSH threshold) holds the passage with 2% of its words
        # replaced: stretches shorter than 50 tokens between replacements are not repeats of >= 50 tokens
        left_in_copies += any(probe in by_id[b] for c in carriers for b in copies_of.get(c, []) if b in by_id)
    # base documents gone though not planted as duplicates: with remove_all, an original whose near copy
    # stayed below the LSH threshold loses every span it shares with that copy (and may fall under min_words)
    planted = url_losers | near_ids
    base_removed = sum(1 for i in range(truth["documents"] - len(near_ids))
                       if f"d{i}" not in kept and f"d{i}" not in planted)
    return {"near_pairs_j08": len(high), "near_recall_j08": round(found / len(high), 4) if high else None,
            "originals_kept": round(originals_kept / len(high), 4) if high else None,
            "passages": len(truth["passages"]), "passages_cleared": cleared,
            "passages_left_in_kept_near_copies": left_in_copies,
            "other_documents_removed": base_removed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--parts", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", help="a folder built by planted_corpus.py (else one is built in a temp dir)")
    parser.add_argument("--work", help="where the output goes (default: a temp dir, deleted)")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        corpus = Path(args.corpus) if args.corpus else Path(tmp) / "in"
        t0 = time.time()
        if not (corpus / "truth.json").exists():
            build(args.docs, corpus, args.seed)
        truth = json.loads((corpus / "truth.json").read_text())
        generate = time.time() - t0
        out = Path(tmp) / "out"
        peak: dict = {}
        stop = threading.Event()
        sampler = threading.Thread(target=sample_worker_rss, args=(stop, peak), daemon=True)
        sampler.start()
        sets = [f"dedup.parts={args.parts}", "dedup.keep_work=true", *args.set]
        t0 = time.time()
        result = subprocess.run([str(HERE.parent / ".venv" / "bin" / "refinedweb"), "run", "--stage", "dedup",
                                 "--workers", str(args.workers), "--input", str(corpus), "--output", str(out),
                                 *[a for s in sets for a in ("--set", s)]], capture_output=True, text=True)
        wall = time.time() - t0
        stop.set()
        sampler.join()
        if result.returncode:
            sys.exit(result.stderr[-3000:])
        stats = json.loads((out / "dedup" / ".refinedweb/stats.json").read_text())
        phases: dict[str, float] = defaultdict(float)
        for marker in (out / "dedup" / ".refinedweb/done").glob("*.json"):
            name = marker.stem.split("-p=")[0].split("-b=")[0].split("-q=")[0]
            name = "cc-rounds" if name.startswith("cc-r=") else name
            phases[name] += json.loads(marker.read_text()).get("seconds", 0.0)
        work = out / "_work" / "dedup"
        n = truth["documents"]
        intermediate = {f"{stage}/{kind}": folder_bytes(work / stage / kind)
                        for stage in ("minhash", "exact_substring", "url")
                        for kind in ("records", "cc", "check", "removed", "marks") if (work / stage / kind).exists()}
        scores = recall(truth, out)
    report = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU {platform.machine()}",
        "docs": n, "text_mb": round(truth["text_bytes"] / 1e6, 1), "parts": args.parts, "workers": args.workers,
        "settings": sets, "seed": truth["seed"], "generate_seconds": round(generate, 1), "wall_seconds": round(wall, 1),
        "docs_per_second": round(n / wall, 1), "docs_per_second_per_core": round(n / wall / args.workers, 1),
        "core_seconds_per_phase": {k: round(v, 1) for k, v in sorted(phases.items())},
        "peak_worker_rss_mb": round(peak.get("worker_rss_mb", 0), 1),
        "peak_worker_rss_mb_reported": stats.get("worker_peak_rss_mb"),
        "intermediate_bytes_per_doc": {k: round(v / n, 1) for k, v in intermediate.items()},
        "intermediate_bytes_per_doc_total": round(sum(intermediate.values()) / n, 1),
        "docs_out": stats["totals"]["docs_out"],
        "stages": {k: {kk: vv for kk, vv in v.items()} for k, v in stats["stages"].items()},
        **scores,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
