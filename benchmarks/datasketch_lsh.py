#!/usr/bin/env python
"""Reference for the dedup benchmark: datasketch's in-memory MinHash + MinHashLSH on the first N documents of a
planted corpus, compared with our MinHash dedup (the CLI, ``dedup.methods=[minhash]``) on the same documents.

    .venv/bin/python benchmarks/datasketch_lsh.py --input /work/bench/pl200k [--docs 20000] [--workers 2]
        [--skip-ours] [--compare-removed LABEL=FILE ...] [--save-removed FILE]

datasketch (single process): the same shingles as ours, word 5-grams of ``normalize_words`` (lower-case,
punctuation deleted, whitespace split; fewer than 5 words -> one shingle of all of them), each shingle's UTF-8
bytes hashed by datasketch's default ``sha1_hash32``; ``MinHash(num_perm=9000)`` (datasketch >= 2.0 default
scheme "affine32", seed 1) built with ``MinHash.generator``; ``MinHashLSH(num_perm=9000, params=(450, 20))``
on dict storage. Documents go in input order: each is queried against the documents before it, then
inserted; every (document, candidate) pair is an edge, and of each connected group the earliest document is
kept, the rest removed. Timed: reading the texts, shingling+MinHash, LSH query+insert, the components.

Ours: ``refinedweb run --stage dedup --workers W --input <subset> --output <tmp> --set dedup.methods=[minhash]``
on the same documents (written, untimed, as 16 Parquet files of consecutive documents), wall time of the
whole CLI call (embedded Ray start-up included); kept ids read from ``<tmp>/dedup/**/*.parquet``.

Recall (both): as ``benchmarks/dedup_scale.py``'s ``recall()``, on the planted pairs inside the subset (see
``datatrove_minhash.minhash_recall``). ``removed_set_vs_ours``: how many documents datasketch removes that ours
keeps and the other way round. ``--compare-removed LABEL=FILE`` adds the same for another removed-id list
(e.g. ``datatrove_minhash.py --save-removed FILE`` on the same ``--limit``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from datatrove_minhash import (  # noqa: E402
    TreeMemory,
    input_files,
    kept_ids_from_parquet,
    machine,
    minhash_recall,
    write_subset,
)


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller index is the root: the root of a group is its earliest document
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


def load_texts(folder: Path, limit: int) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    texts: list[str] = []
    for f in input_files(folder):
        t = pq.read_table(f, columns=["id", "text"])
        ids += t.column("id").to_pylist()
        texts += t.column("text").to_pylist()
        if len(ids) >= limit:
            break
    return ids[:limit], texts[:limit]


def run_datasketch(texts: list[str], num_perm: int, bands: int, rows: int, ngram: int) -> tuple[set[int], dict]:
    from datasketch import MinHash, MinHashLSH

    from refinedweb.dedup.kernels.minhash import normalize_words

    def shingles(text: str):
        words = normalize_words(text)
        if not words:
            return []
        if len(words) < ngram:
            return [" ".join(words).encode()]
        return list({" ".join(words[i:i + ngram]).encode() for i in range(len(words) - ngram + 1)})

    seconds = {"minhash": 0.0, "lsh": 0.0}
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    uf = UnionFind(len(texts))
    edges = 0
    t = time.perf_counter()
    gen = MinHash.generator((shingles(x) for x in texts), num_perm=num_perm)
    for i in range(len(texts)):
        m = next(gen)
        t1 = time.perf_counter()
        seconds["minhash"] += t1 - t
        for j in lsh.query(m):
            uf.union(i, j)
            edges += 1
        lsh.insert(i, m, check_duplication=False)
        t = time.perf_counter()
        seconds["lsh"] += t - t1
    t = time.perf_counter()
    removed = {i for i in range(len(texts)) if uf.find(i) != i}
    seconds["components"] = time.perf_counter() - t
    return removed, {"seconds": seconds, "candidate_edges": edges}


def run_ours(folder: Path, workers: int, sets: list[str]) -> tuple[set[str], float, dict]:
    with tempfile.TemporaryDirectory(prefix="ours-minhash-") as tmp:
        out = Path(tmp) / "out"
        cmd = [str(ROOT / ".venv" / "bin" / "refinedweb"), "run", "--stage", "dedup", "--workers", str(workers),
               "--input", str(folder), "--output", str(out), "--set", "dedup.methods=[minhash]",
               *[a for s in sets for a in ("--set", s)]]
        with TreeMemory(include_self=False) as mem:  # the CLI and its Ray processes, not this one
            t = time.perf_counter()
            result = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
        if result.returncode:
            sys.exit(result.stderr[-3000:])
        kept = kept_ids_from_parquet(out / "dedup")
        stats = json.loads((out / "dedup" / ".refinedweb/stats.json").read_text())
    return kept, wall, {"command": " ".join(cmd[1:]), "stats": stats.get("stages", {}).get("minhash"),
                        **mem.report()}


def diff(a_removed: set[str], b_removed: set[str]) -> dict:
    return {"removed_by_both": len(a_removed & b_removed), "only_this": len(a_removed - b_removed),
            "only_other": len(b_removed - a_removed), "differ": len(a_removed ^ b_removed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="a planted corpus folder (in-NNN.parquet + truth.json)")
    parser.add_argument("--docs", type=int, default=20_000, help="the first N documents in input order")
    parser.add_argument("--num-perm", type=int, default=9000)
    parser.add_argument("--bands", type=int, default=450)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="workers of our CLI run")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="extra --set for our CLI run")
    parser.add_argument("--compare-removed", action="append", default=[], metavar="LABEL=FILE",
                        help="also compare with this removed-id list (one id per line)")
    parser.add_argument("--save-removed", help="write datasketch's removed ids, one per line, to this file")
    args = parser.parse_args()

    corpus = Path(args.input)
    truth = json.loads((corpus / "truth.json").read_text())
    import datasketch

    t = time.perf_counter()
    ids, texts = load_texts(corpus, args.docs)
    read_seconds = time.perf_counter() - t
    n = len(ids)
    t = time.perf_counter()
    removed_idx, info = run_datasketch(texts, args.num_perm, args.bands, args.rows, 5)
    compute = time.perf_counter() - t
    wall = read_seconds + compute
    removed = {ids[i] for i in removed_idx}
    kept = set(ids) - removed
    if args.save_removed:
        Path(args.save_removed).write_text("".join(f"{i}\n" for i in ids if i in removed))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del texts

    report = {
        "tool": "datasketch", "datasketch": datasketch.__version__,
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "input": str(corpus), "docs": n,
        "config": {"num_perm": args.num_perm, "bands": args.bands, "rows": args.rows, "ngram": 5,
                   "scheme": "affine32 (datasketch default)", "shingle_hash": "sha1_hash32 (datasketch default)",
                   "normalization": "refinedweb.dedup.kernels.minhash.normalize_words",
                   "lsh_threshold_approx": round((1 / args.bands) ** (1 / args.rows), 3)},
        "wall_seconds": round(wall, 1),
        "seconds": {"read": round(read_seconds, 1), **{k: round(v, 1) for k, v in info["seconds"].items()}},
        "docs_per_second": round(n / wall, 1),
        "docs_per_second_per_core": round(n / wall, 1),
        "cores": 1,
        "candidate_edges": info["candidate_edges"],
        "peak_rss_mb": round(peak_rss, 1),
        **minhash_recall(truth, ids, kept),
    }
    compare = {}
    for spec in args.compare_removed:
        label, path = spec.split("=", 1)
        other = {x for x in Path(path).read_text().split() if x}
        compare[label] = diff(removed, other)
    if not args.skip_ours:
        with tempfile.TemporaryDirectory(prefix="subset-") as tmp:
            sub = Path(tmp) / "input"
            write_subset(corpus, n, sub)
            ours_kept, ours_wall, ours_info = run_ours(sub, args.workers, args.set)
        assert ours_kept <= set(ids), "our output holds ids outside the subset"
        ours_removed = set(ids) - ours_kept
        report["ours"] = {
            "wall_seconds": round(ours_wall, 1), "workers": args.workers,
            "docs_per_second": round(n / ours_wall, 1),
            "docs_per_second_per_core": round(n / ours_wall / args.workers, 1),
            **ours_info, **minhash_recall(truth, ids, ours_kept),
        }
        compare["ours"] = diff(removed, ours_removed)
        for spec in args.compare_removed:
            label, path = spec.split("=", 1)
            other = {x for x in Path(path).read_text().split() if x}
            report["ours"].setdefault("removed_set_vs", {})[label] = diff(ours_removed, other)
    if compare:
        report["removed_set_vs"] = compare
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
