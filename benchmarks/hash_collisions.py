"""How often do dedup's 64-bit keys collide, and what would it cost at 1B documents / 5T tokens?

    .venv/bin/python benchmarks/hash_collisions.py [--docs 1e9] [--tokens 5e12] [--store-urls 1e10]

Expected false matches follow the birthday bound: m distinct values in a 2**b space give m(m-1)/2 / 2**b
colliding pairs when the hash behaves like a random function. That last assumption is checked on real text:
the exact-substring window hashes (a polynomial hash mod 2**64 of splitmix64-mixed GPT-2 tokens), the MinHash
band keys and the URL hashes of real multilingual text (AEB gold articles, lingua's sentences in 70+
languages) are cut to their top b bits, with b small enough that collisions happen, and the colliding pairs
of distinct values (told apart by a 128-bit hash of the window's tokens / the band's text / the URL) are
counted against the bound.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import xxhash

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = HERE.parent.parent / "shared" / "data"

from refinedweb.dedup.kernels.minhash import MinHashConfig, MinHasher  # noqa: E402
from refinedweb.dedup.kernels.url_keys import url_hash  # noqa: E402
from refinedweb.dedup.kernels.windows import tokenize, window_records  # noqa: E402


def texts() -> list[str]:
    truth = json.loads((SHARED / "extraction" / "scrapinghub_aeb" / "ground-truth.json").read_text())
    out = [v["articleBody"] for v in truth.values()]
    with gzip.open(SHARED / "langid" / "lingua_testdata" / "sentences_all.jsonl.gz", "rt") as fh:
        sentences = [json.loads(line)["text"] for line in fh if line.strip()]
    out += [" ".join(sentences[i:i + 40]) for i in range(0, len(sentences), 40)]
    return out


def observed(hashes: np.ndarray, identities: np.ndarray, bits: int) -> tuple[int, int, float]:
    """(distinct values, pairs of distinct values whose top `bits` bits agree, expected such pairs)."""
    _, first = np.unique(identities, return_index=True)
    top = hashes[first] >> np.uint64(64 - bits)
    _, counts = np.unique(top, return_counts=True)
    m = len(first)
    return m, int((counts * (counts - 1) // 2).sum()), m * (m - 1) / 2 / 2.0 ** bits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=float, default=1e9)
    parser.add_argument("--tokens", type=float, default=5e12)
    parser.add_argument("--store-urls", type=float, default=1e10)
    args = parser.parse_args()
    corpus = texts()
    report: dict = {"texts": len(corpus), "checks": []}

    tokens = tokenize(corpus)
    hashes, docs, offsets = window_records(tokens, 50)
    ids = np.array([xxhash.xxh3_128_intdigest(tokens[d][o:o + 50].tobytes()) & ((1 << 64) - 1)
                    for d, o in zip(docs.tolist(), offsets.tolist())], dtype=np.uint64)
    for bits in (28, 32):
        m, got, want = observed(hashes, ids, bits)
        report["checks"].append({"keys": "exact_substring 50-token windows", "distinct": m, "bits": bits,
                                 "colliding_pairs": got, "expected": round(want, 1)})

    hasher = MinHasher(MinHashConfig())
    keys = hasher.band_keys_batch(corpus)                          # (docs, 450)
    signatures = hasher.signature_batch(corpus).reshape(len(corpus), 450, 20)
    band_ids = np.array([xxhash.xxh3_64_intdigest(signatures[d, b].tobytes() + b.to_bytes(2, "little"))
                         for d in range(len(corpus)) for b in range(450)], dtype=np.uint64)
    for bits in (24, 28):
        m, got, want = observed(keys.reshape(-1), band_ids, bits)
        report["checks"].append({"keys": "minhash band keys", "distinct": m, "bits": bits, "colliding_pairs": got,
                                 "expected": round(want, 1)})

    words = sorted({w for t in corpus[:2000] for w in t.split() if w.isalpha()})[:200_000]
    urls = [f"https://{w.lower()}.example.org/{v}/{i}" for i, (w, v) in enumerate(zip(words, reversed(words)))]
    url_keys = np.array([url_hash(u) for u in urls], dtype=np.uint64)
    url_ids = np.array([xxhash.xxh3_128_intdigest(u.encode()) & ((1 << 64) - 1) for u in urls], dtype=np.uint64)
    for bits in (28, 32):
        m, got, want = observed(url_keys, url_ids, bits)
        report["checks"].append({"keys": "URL hashes", "distinct": m, "bits": bits, "colliding_pairs": got,
                                 "expected": round(want, 1)})

    space = 2.0 ** 64
    band_keys = args.docs * 450
    windows = args.tokens
    report["at_scale"] = {
        "minhash_band_key_false_pairs": round(band_keys ** 2 / 2 / space),
        "minhash_documents_wrongly_removed_at_most": round(band_keys ** 2 / 2 / space),
        "exact_substring_false_window_pairs": round(windows ** 2 / 2 / space),
        "exact_substring_tokens_wrongly_removed_at_most": round(windows ** 2 / 2 / space * 2 * 50),
        "url_false_duplicates_within_a_run": round(args.docs ** 2 / 2 / space, 3),
        "url_false_seen_against_the_store": round(args.docs * args.store_urls / space, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
