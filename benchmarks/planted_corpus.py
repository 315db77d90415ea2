"""A large dedup benchmark corpus of real sentences with known duplicates spread over the whole input.

    .venv/bin/python benchmarks/planted_corpus.py --docs 200000 --out /tmp/planted-200k [--seed 0]

Sentences come from ../shared/data (the article-extraction benchmark's gold text and lingua's English
sentences). A base document is 15-22 random sentences with 8% of its words replaced by random words of the
vocabulary, so that distinct documents share no long spans by accident. Planted: 5% near copies (2% of
words replaced again; the exact word-5-gram Jaccard of each pair is recorded) placed anywhere after their
original; 1,000 passages of ~80 words (sentences held out from the base documents) each inserted into 3-5
documents anywhere; 1% URL duplicates. Writes `<out>/in-NNN.parquet` (id, url, text) and `<out>/truth.json`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import string
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}“”‘’«»–—…]")


def sentences() -> list[str]:
    truth = json.loads((SHARED / "extraction" / "scrapinghub_aeb" / "ground-truth.json").read_text())
    texts = [v["articleBody"] for v in truth.values()]
    with gzip.open(SHARED / "langid" / "lingua_testdata" / "sentences_all.jsonl.gz", "rt") as fh:
        texts += [row["text"] for row in map(json.loads, fh) if row["lang"] == "en"]
    out = []
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")):
            if 6 <= len(sentence.split()) <= 40:
                out.append(" ".join(sentence.split()))
    return sorted(set(out))


def shingles(words: list[str], n: int = 5) -> set[tuple[str, ...]]:
    words = _PUNCT.sub("", " ".join(words).lower()).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)} if len(words) >= n else {tuple(words)}


def build(n: int, out: Path, seed: int = 0, files: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    pool = sentences()
    order = rng.permutation(len(pool))
    held = [pool[i] for i in order[:5000]]            # passages only: each sentence used once
    base = [pool[i] for i in order[5000:]]
    vocab = np.array(sorted({w for s in base for w in s.split()}), dtype=object)
    sent_words = [np.array(s.split(), dtype=object) for s in base]
    passages = []
    next_held = 0
    for _ in range(1000):
        words: list[str] = []
        while len(words) < 80:                 # whole held sentences, each used once, up to 80 words
            words += held[next_held].split()
            next_held += 1
        words = np.array(words[:80], dtype=object)
        mask = rng.random(len(words)) < 0.08
        words[mask] = vocab[rng.integers(0, len(vocab), int(mask.sum()))]
        passages.append(" ".join(words))
    n_near = n // 20
    n_base = n - n_near
    passages_of: dict[int, list[int]] = {}
    carriers: list[list[int]] = []
    for p in range(len(passages)):                 # carriers as base-document indices, sorted
        chosen = sorted(rng.choice(n_base, int(rng.integers(3, 6)), replace=False).tolist())
        for i in chosen:
            passages_of.setdefault(i, []).append(p)
        carriers.append(chosen)
    originals = rng.choice(n_base, n_near, replace=False)
    positions = rng.integers(originals + 1, n_base + 1)          # a copy goes after base document pos - 1
    copy_of = {int(i): k for k, i in enumerate(originals.tolist())}
    after: dict[int, list[int]] = {}
    for k, pos in enumerate(positions.tolist()):
        after.setdefault(pos - 1, []).append(k)
    near_texts: dict[int, str] = {}
    near = []
    ids, rows_text, urls = [], [], []
    index_of_base = np.empty(n_base, dtype=np.int64)
    for i in range(n_base):
        chosen = rng.integers(0, len(sent_words), int(rng.integers(15, 23)))
        words = np.concatenate([sent_words[c] for c in chosen])
        mask = rng.random(len(words)) < 0.08
        words[mask] = vocab[rng.integers(0, len(vocab), int(mask.sum()))]
        for p in passages_of.get(i, []):
            at = int(rng.integers(1, len(words)))
            words = np.concatenate([words[:at], np.array(passages[p].split(), dtype=object), words[at:]])
        if i in copy_of:                             # its near copy: 2% of the words replaced again
            k = copy_of[i]
            copy = words.copy()
            mask = rng.random(len(copy)) < 0.02
            copy[mask] = vocab[rng.integers(0, len(vocab), int(mask.sum()))]
            near_texts[k] = " ".join(copy)
            a, b = shingles(list(words)), shingles(list(copy))
            near.append([f"d{i}", f"n{k}", round(len(a & b) / len(a | b), 4)])
        index_of_base[i] = len(ids)
        ids.append(f"d{i}")
        rows_text.append(" ".join(words))
        urls.append(f"https://s{i % 997}.example.org/p/{i}")
        for k in after.pop(i, []):
            ids.append(f"n{k}")
            rows_text.append(near_texts.pop(k))
            urls.append(f"https://mirror{k % 991}.example.net/c/{k}")
    url_dups = []
    for i in rng.choice(n_base - 1, n // 100, replace=False).tolist():
        a, b = int(index_of_base[i]), int(index_of_base[int(rng.integers(i + 1, n_base))])
        urls[b] = urls[a].replace("https://", "http://www.") + "/"
        url_dups.append([ids[a], ids[b]])
    out.mkdir(parents=True, exist_ok=True)
    total = len(ids)
    for f in range(files):
        lo, hi = f * total // files, (f + 1) * total // files
        pq.write_table(pa.table({"id": ids[lo:hi], "url": urls[lo:hi], "text": rows_text[lo:hi]}),
                       out / f"in-{f:03d}.parquet", compression="zstd")
    truth = {"documents": total, "near_pairs": near, "passages": passages,
             "carriers": [[f"d{i}" for i in c] for c in carriers], "url_duplicates": url_dups,
             "text_bytes": int(sum(len(t.encode()) for t in rows_text)), "seed": seed}
    (out / "truth.json").write_text(json.dumps(truth))
    return truth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.time()
    truth = build(args.docs, Path(args.out), args.seed)
    print(json.dumps({"documents": truth["documents"], "text_mb": round(truth["text_bytes"] / 1e6, 1),
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
