"""MinHash throughput on one core: our `MinHasher.band_keys_batch` vs datasketch's MinHash, 9,000 hashes.

    .venv/bin/python benchmarks/minhash_speed.py [--docs 300] [--repeats 7] [--words 404]

Documents are ~400-shingle windows of real English text (the ``articleBody`` fields of the Scrapinghub
article-extraction benchmark in ../shared/data, original case and punctuation kept). Every measurement runs
single-threaded (OMP/OPENBLAS/MKL/NUMBA threads = 1) in its own child process and is repeated; the JSON
gives the best and the median of the repeats.

* ours: ``band_keys_batch(texts)`` from raw text: lower-casing, punctuation removal, 5-gram hashing,
  9,000 MinHash values and 450 band keys per document.
* datasketch: ``MinHash(num_perm=9000).update_batch(shingles)`` with the shingles (the same 5-grams, UTF-8)
  prepared outside the timed region and, in the "reused permutations" variant, the permutation parameters
  built once, which is datasketch's best case. It is also run with glibc malloc told to keep freed memory
  (``MALLOC_MMAP_THRESHOLD_`` etc.): its per-document 14 MB temporaries otherwise go back to the kernel
  and are page-faulted in again, which halves its speed on this machine. The ratio is taken against the
  fastest datasketch variant.
* setup: numba import, the parameter arrays and the first call, once with an empty numba cache (compile)
  and once with the cache written by that run (what a fresh worker process pays).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GROUND_TRUTH = REPO.parent / "shared" / "data" / "extraction" / "scrapinghub_aeb" / "ground-truth.json"
MALLOC_KEEP = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824",
               "MALLOC_TOP_PAD_": "134217728"}

sys.path.insert(0, str(REPO))


def make_docs(count: int, words: int) -> list[str]:
    """``count`` texts of ``words`` normalised words each (so ``words - 4`` shingles), cut from real articles."""
    from refinedweb.dedup.kernels.minhash import normalize_words

    articles = json.loads(GROUND_TRUTH.read_text())
    tokens: list[str] = []
    for item in sorted(articles.values(), key=lambda a: a.get("url", "")):
        tokens += (item.get("articleBody") or "").split()
    docs, current, kept, i = [], [], 0, 0
    while len(docs) < count:
        tok = tokens[i % len(tokens)]
        i += 1
        current.append(tok)
        kept += len(normalize_words(tok))
        if kept >= words:
            docs.append(" ".join(current))
            current, kept = [], 0
    return docs


def timed(fn, batch, repeats: int) -> dict:
    fn(batch[:2])  # warm-up (loads compiled code, page-faults the buffers)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(batch)
        rates.append(len(batch) / (time.perf_counter() - t0))
    return {"docs_per_s_best": round(max(rates), 1), "docs_per_s_median": round(statistics.median(rates), 1),
            "ms_per_doc_best": round(1000 / max(rates), 3), "repeats": [round(r, 1) for r in rates]}


def worker_ours(args) -> dict:
    from refinedweb.dedup.kernels.minhash import MinHasher, shingle_hashes

    docs = make_docs(args.docs, args.words)
    hasher = MinHasher()
    out = timed(hasher.band_keys_batch, docs, args.repeats)
    # the same documents, one call per document (the per-call Python overhead included)
    out["one_call_per_doc"] = timed(lambda b: [hasher.band_keys(t) for t in b], docs, max(3, args.repeats // 2))
    out["mean_shingles"] = round(sum(len(shingle_hashes(t)) for t in docs) / len(docs), 1)
    return out


def worker_datasketch(args) -> dict:
    import datasketch
    from datasketch import MinHash

    from refinedweb.dedup.kernels.minhash import normalize_words

    docs = make_docs(args.docs // 3 or 1, args.words)  # datasketch is slower: fewer documents per repeat
    shingles = []
    for t in docs:
        w = normalize_words(t)
        shingles.append(list({" ".join(w[i:i + 5]).encode() for i in range(len(w) - 4)}))
    perms = MinHash(num_perm=9000).permutations

    def reused(batch):
        for s in batch:
            MinHash(num_perm=9000, permutations=perms, scheme="affine32").update_batch(s)

    def fresh(batch):
        for s in batch:
            MinHash(num_perm=9000).update_batch(s)

    def with_shingling(batch):
        for t in batch:
            w = normalize_words(t)
            MinHash(num_perm=9000, permutations=perms, scheme="affine32").update_batch(
                [" ".join(w[i:i + 5]).encode() for i in range(len(w) - 4)])

    return {"version": datasketch.__version__,
            "mean_shingles": round(sum(map(len, shingles)) / len(shingles), 1),
            "update_batch_reused_permutations": timed(reused, shingles, args.repeats),
            "update_batch_fresh_minhash": timed(fresh, shingles, max(3, args.repeats // 2)),
            "with_shingling_reused_permutations": timed(with_shingling, docs, max(3, args.repeats // 2))}


def worker_setup(args) -> dict:
    t0 = time.perf_counter()
    from refinedweb.dedup.kernels.minhash import MinHasher

    t1 = time.perf_counter()
    hasher = MinHasher()
    t2 = time.perf_counter()
    hasher.band_keys_batch(["the first document after start-up"])
    t3 = time.perf_counter()
    hasher.signature("and a signature")
    t4 = time.perf_counter()
    return {"import_s": round(t1 - t0, 3), "init_s": round(t2 - t1, 3), "first_band_keys_call_s": round(t3 - t2, 3),
            "first_signature_call_s": round(t4 - t3, 3), "total_s": round(t4 - t0, 3)}


def child(kind: str, args, extra_env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--docs", str(args.docs), "--repeats", str(args.repeats),
           "--words", str(args.words)]
    env = {**os.environ, **(extra_env or {})}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--words", type=int, default=404, help="normalised words per document (shingles + 4)")
    parser.add_argument("--worker", choices=["ours", "datasketch", "setup"], help=argparse.SUPPRESS)
    parser.add_argument("--skip-setup", action="store_true", help="do not measure the compile / cache-load cost")
    args = parser.parse_args()
    if args.worker:
        workers = {"ours": worker_ours, "datasketch": worker_datasketch, "setup": worker_setup}
        print(json.dumps(workers[args.worker](args)))
        return
    if not GROUND_TRUTH.exists():
        sys.exit(f"missing {GROUND_TRUTH} (../shared/data beside the checkout)")

    result: dict = {"num_perm": 9000, "bands": 450, "rows": 20, "ngram": 5, "words_per_doc": args.words,
                    "threads": 1}
    if not args.skip_setup:
        with tempfile.TemporaryDirectory() as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            result["setup_cold_compile"] = child("setup", args, env)
            result["setup_cached"] = child("setup", args, env)
    result["ours"] = child("ours", args)
    result["datasketch"] = child("datasketch", args)
    result["datasketch_malloc_keep"] = child("datasketch", args, MALLOC_KEEP)
    variants = {f"{env}:{k}": v for env, d in (("default", result["datasketch"]),
                                               ("malloc_keep", result["datasketch_malloc_keep"]))
                for k, v in d.items() if isinstance(v, dict) and k.startswith("update_batch")}
    best_name = max(variants, key=lambda k: variants[k]["docs_per_s_best"])
    best = variants[best_name]
    ours = result["ours"]
    result["ratio"] = {
        "against": f"datasketch {best_name}",
        "best_over_best": round(ours["docs_per_s_best"] / best["docs_per_s_best"], 2),
        "median_over_median": round(ours["docs_per_s_median"] / best["docs_per_s_median"], 2),
        "median_vs_default_datasketch_fresh_minhash": round(
            ours["docs_per_s_median"] / result["datasketch"]["update_batch_fresh_minhash"]["docs_per_s_median"], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
