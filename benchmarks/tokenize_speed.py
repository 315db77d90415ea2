"""`refinedweb tokenize --format nanotron` against datatrove's DocumentTokenizer on the same Parquet: tokens/s per
core, whole process timed, shuffle on in both, the GPT-2 tokenizer, the token streams checked identical.

    .venv/bin/python benchmarks/tokenize_speed.py [--mb 200] [--seed 0] [--dir DIR]

Input: real text of ../shared/data — the gold article bodies of both extraction benchmarks, the page text of every
shared WARC as our filter stage keeps it, and lingua's sentences of 70+ languages grouped 30 to a document —
drawn (seeded) with replacement until `--mb` MB, in 8 Parquet files. Ours: `refinedweb tokenize --workers 1`
(embedded Ray: one worker). datatrove 0.10.1 (.venv-bench-datatrove): ParquetReader -> DocumentTokenizer(GPT-2's
tokenizer.json written from the same offline vocabulary, eos <|endoftext|>, shuffle_documents=True) in one task,
TOKENIZERS_PARALLELISM=false and RAYON_NUM_THREADS=1 (one core, as ours). Identity: every document's tokens,
hashed, compared as multisets (the two shuffles differ), and the token totals. Peak RSS: the largest resident set
of the processes of each run, sampled from /proc.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

DATATROVE = """
import os, sys
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer
from datatrove.executor import LocalPipelineExecutor
pipeline = [ParquetReader(sys.argv[1], glob_pattern="*.parquet", text_key="text", id_key="id"),
            DocumentTokenizer(sys.argv[2], tokenizer_name_or_path=sys.argv[3], eos_token="<|endoftext|>",
                              local_working_dir=sys.argv[4], shuffle_documents=True, seed=0)]
LocalPipelineExecutor(pipeline, tasks=1, workers=1, logging_dir=sys.argv[5]).run()
"""


def texts() -> list[str]:
    out = [v["articleBody"] for v in json.loads((SHARED / "extraction" / "scrapinghub_aeb" / "ground-truth.json")
                                                 .read_text()).values()]
    evaluation = json.loads((SHARED / "extraction" / "trafilatura_eval" / "evaldata.json").read_text())
    out += [" ".join(v.get("with") or []) for v in evaluation.values() if v.get("with")]
    with gzip.open(SHARED / "langid" / "lingua_testdata" / "sentences_all.jsonl.gz", "rt") as fh:
        sentences = [json.loads(line)["text"] for line in fh]
    out += [" ".join(sentences[i:i + 30]) for i in range(0, len(sentences), 30)]
    with tempfile.TemporaryDirectory() as tmp:
        from refinedweb.config import load_config
        from refinedweb.runtime.filter_pass import Pipeline, filter_file

        cfg = load_config(overrides=["url_filter.blocklist=[package:demo_blocklist.txt]", "langid.languages=null",
                                     "langid.threshold=0.0"])
        pipeline = Pipeline.build(cfg)
        for warc in sorted((SHARED / "warc").glob("*.warc.gz")):
            filter_file(str(warc), cfg, tmp, pipeline)
        for path in Path(tmp).rglob("*.parquet"):
            out += pq.read_table(path, columns=["text"]).column("text").to_pylist()
    return [t for t in out if t and t.strip()]


def build(folder: Path, mb: int, seed: int) -> dict:
    pool = texts()
    rng = random.Random(seed)
    docs, size = [], 0
    while size < mb * 1_000_000:
        text = rng.choice(pool)
        docs.append(text)
        size += len(text.encode("utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-len(docs) // 8)
    for k in range(8):
        chunk = docs[k * step:(k + 1) * step]
        pq.write_table(pa.table({"id": [f"{k}-{i}" for i in range(len(chunk))], "text": chunk}),
                       folder / f"part-{k}.parquet", compression="zstd")
    return {"documents": len(docs), "text_mb": round(size / 1e6, 1), "pool_documents": len(pool)}


def timed(command: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB of the command and its descendants)."""
    peak = {"mb": 0.0}
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total = {}
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    stat = open(f"/proc/{pid}/stat").read().split()
                    if int(stat[5]) != proc.pid:         # the session id: everything the command started
                        continue
                    rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))
                    total[pid] = rss / 1024
                except (OSError, StopIteration, IndexError, ValueError):
                    pass
            if total:
                peak["mb"] = max(peak["mb"], max(total.values()))
            stop.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    if proc.returncode:
        sys.exit(err[-3000:])
    return wall, peak["mb"]


def doc_hashes(files: list[Path]) -> tuple[Counter, int]:
    """A hash of every document's tokens (a multiset: the two shuffles differ) and the token total."""
    from refinedweb.tokenize import formats

    hashes, total = Counter(), 0
    for ds in sorted(files):
        tokens, lengths = formats.read_datatrove(ds.read_bytes(), Path(f"{ds}.index").read_bytes(), 2)
        ends = np.cumsum(lengths)
        for e, n in zip(ends.tolist(), lengths.tolist()):
            hashes[hashlib.sha1(tokens[e - n:e].tobytes()).hexdigest()] += 1
        total += len(tokens)
    return hashes, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="tokenize-bench-"))
    data = root / "data"
    corpus = build(data, args.mb, args.seed) if not data.exists() else {"reused": str(data)}
    from tokenizer_files import gpt2_tokenizer_json

    tokenizer = gpt2_tokenizer_json(root / "gpt2" / "tokenizer.json")
    python = str(REPO / ".venv" / "bin" / "python")
    baseline = REPO / ".venv-bench-datatrove" / "bin" / "python"
    results = {"date": time.strftime("%Y-%m-%d"), "corpus": corpus, "runs": []}
    for attempt in range(2):                              # alternate who goes first
        for tool in (("ours", "datatrove") if attempt == 0 else ("datatrove", "ours")):
            out = root / f"{tool}-{attempt}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            if tool == "ours":
                wall, rss = timed([python, "-m", "refinedweb", "tokenize", "--input", str(data), "--output", str(out),
                                   "--format", "nanotron", "--workers", "1", "--progress", "off"])
                hashes, total = doc_hashes(list((out / "tokenized").glob("*.ds")))
            else:
                wall, rss = timed([str(baseline), "-c", DATATROVE, str(data), str(out), str(tokenizer),
                                   str(root / f"work-{attempt}"), str(root / f"logs-{attempt}")],
                                  env={"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1"})
                hashes, total = doc_hashes(list(out.glob("*.ds")))
            results["runs"].append({"tool": tool, "attempt": attempt, "wall_seconds": round(wall, 1),
                                    "tokens": total, "tokens_per_second": round(total / wall),
                                    "peak_rss_mb": round(rss), "documents": sum(hashes.values()),
                                    "_hashes": hashes})
    ours = [r for r in results["runs"] if r["tool"] == "ours"]
    theirs = [r for r in results["runs"] if r["tool"] == "datatrove"]
    results["identical_token_streams"] = all(r["_hashes"] == ours[0]["_hashes"] for r in results["runs"])
    for r in results["runs"]:
        del r["_hashes"]
    results["speedup"] = [round(t["wall_seconds"] / o["wall_seconds"], 2) for o, t in zip(ours, theirs)]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
