"""A generated corpus with planted duplicates of measured similarity, for dedup tests and benchmarks.

Base documents are built from real sentences (each sentence used once, so distinct documents share
no long spans); near duplicates are copies with a fraction of words replaced, their exact word-5-gram
Jaccard measured; repeated passages are inserted into several documents; some distinct documents
share a URL (in different spellings).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}“”‘’«»–—…]")


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _PUNCT.sub("", text.lower()).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


@dataclass
class Corpus:
    rows: list[dict] = field(default_factory=list)               # in input order
    near_pairs: list[tuple[str, str, float]] = field(default_factory=list)   # (original id, copy id, Jaccard)
    passage: str = ""
    passage_carriers: list[str] = field(default_factory=list)    # ids, input order
    url_groups: list[list[str]] = field(default_factory=list)    # ids sharing one normalised URL, input order
    untouched: list[str] = field(default_factory=list)           # ids with no planted relation at all


def split_sentences(texts: list[str], window: int = 6) -> list[str]:
    """Sentences of 6–40 words that share no `window`-word run with an earlier sentence: real text repeats
    itself (quotes, boilerplate), and planted duplicates must be the only long repeats in the corpus."""
    out, seen = [], set()
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")):
            words = sentence.split()
            if not 6 <= len(words) <= 40:
                continue
            runs = {tuple(words[i:i + window]) for i in range(len(words) - window + 1)}
            if runs & seen:
                continue
            seen |= runs
            out.append(" ".join(words))
    return out


def make_corpus(sentences: list[str], n_docs: int = 200, seed: int = 0, sentences_per_doc: int = 18,
                rates: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.15, 0.3)) -> Corpus:
    rng = random.Random(seed)
    pool = list(sentences)
    rng.shuffle(pool)
    vocabulary = sorted({w for s in pool[:2000] for w in s.split()})
    passage = " ".join(pool[:6])                     # ~120 words, used nowhere else
    pool = pool[6:]
    docs = []
    for i in range(n_docs):
        chunk = pool[i * sentences_per_doc:(i + 1) * sentences_per_doc]
        if len(chunk) < sentences_per_doc:
            break
        docs.append(" ".join(chunk))
    corpus = Corpus(passage=passage)
    rows: list[dict] = []
    for i, text in enumerate(docs):
        rows.append({"id": f"doc-{i:05d}", "url": f"https://site{i % 37}.example.org/article/{i}", "text": text,
                     "note": f"base {i}"})
    related: set[str] = set()
    # near duplicates of the first len(rates) * 4 documents, appended later in input order
    copies = []
    for k in range(len(rates) * 4):
        original = rows[k]
        rate = rates[k % len(rates)]
        words = original["text"].split()
        changed = [rng.choice(vocabulary) if rng.random() < rate else w for w in words]
        text = " ".join(changed)
        copy_id = f"near-{k:05d}"
        copies.append({"id": copy_id, "url": f"https://mirror{k}.example.net/copy/{k}", "text": text, "note": f"copy of {k}"})
        corpus.near_pairs.append((original["id"], copy_id, jaccard(original["text"], text)))
        related.update({original["id"], copy_id})
    # a repeated passage inserted into 4 documents further down
    carriers = list(range(60, 64))
    for idx in carriers:
        sentences_of = rows[idx]["text"].split(". ")
        middle = len(sentences_of) // 2
        rows[idx]["text"] = ". ".join(sentences_of[:middle]) + ". " + passage + " " + ". ".join(sentences_of[middle:])
        corpus.passage_carriers.append(rows[idx]["id"])
        related.add(rows[idx]["id"])
    # distinct documents sharing a URL, written differently
    for a, b in ((80, 81), (90, 95)):
        rows[b]["url"] = rows[a]["url"].replace("https://", "http://www.") + "/"
        corpus.url_groups.append([rows[a]["id"], rows[b]["id"]])
        related.update({rows[a]["id"], rows[b]["id"]})
    corpus.rows = rows + copies
    corpus.untouched = [r["id"] for r in rows if r["id"] not in related]
    return corpus


@dataclass
class Planted:
    rows: list[dict]                                   # in input order
    near_pairs: list[tuple[str, str, float]]           # (earlier id, later copy id, exact 5-gram Jaccard)
    passages: list[str]
    carriers: list[list[str]]                          # per passage: the ids holding it, in input order
    url_groups: list[list[str]]                        # ids sharing one normalised URL, in input order


def make_planted(sentences: list[str], n_docs: int, seed: int = 0, sentences_per_doc: int = 5,
                 n_passages: int = 30, carriers_per_passage: int = 3, n_near: int = 60, n_url: int = 20,
                 rates: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.3)) -> Planted:
    """`n_docs` base documents of distinct real sentences, with duplicates spread over the whole input:
    near copies (a fraction of words replaced) placed anywhere after their original, passages (~60-word
    runs of sentences used nowhere else) each inserted into several documents, and URL duplicates."""
    rng = random.Random(seed)
    pool = list(sentences)
    rng.shuffle(pool)
    vocabulary = sorted({w for s in pool[:2000] for w in s.split()})
    passages = []
    for _ in range(n_passages):
        take = []
        while len(" ".join(take).split()) < 60:
            take.append(pool.pop())
        passages.append(" ".join(take))
    texts = [" ".join(pool[i * sentences_per_doc:(i + 1) * sentences_per_doc]) for i in range(n_docs)]
    if len(pool) < n_docs * sentences_per_doc:
        raise ValueError("not enough sentences for that many documents")
    docs = [{"id": f"doc-{i:05d}", "url": f"https://site{i % 53}.example.org/a/{i}", "text": t} for i, t in enumerate(texts)]
    carriers = []
    for passage in passages:
        chosen = sorted(rng.sample(range(n_docs), carriers_per_passage))
        for i in chosen:
            words = docs[i]["text"].split(". ")
            cut = rng.randrange(1, max(2, len(words)))
            docs[i]["text"] = ". ".join(words[:cut]) + ". " + passage + " " + ". ".join(words[cut:])
        carriers.append([docs[i]["id"] for i in chosen])
    order = list(range(n_docs))
    near = []
    originals = rng.sample(range(n_docs), n_near)
    for k, i in enumerate(originals):
        rate = rates[k % len(rates)]
        words = docs[i]["text"].split()
        text = " ".join(rng.choice(vocabulary) if rng.random() < rate else w for w in words)
        copy = {"id": f"near-{k:05d}", "url": f"https://mirror{k}.example.net/c/{k}", "text": text}
        near.append((docs[i]["id"], copy, jaccard(docs[i]["text"], text)))
    rows = [docs[i] for i in order]
    for original, copy, _ in near:                     # each copy somewhere after its original
        at = rows.index(next(r for r in rows if r["id"] == original))
        rows.insert(rng.randrange(at + 1, len(rows) + 1), copy)
    url_groups = []
    for a in rng.sample([r for r in rows if r["id"].startswith("doc-")], 2 * n_url)[:n_url]:
        position = rows.index(a)
        b = rows[rng.randrange(position + 1, len(rows))] if position + 1 < len(rows) else None
        if b is None or b["id"].startswith("near-") or any(b["id"] in g for g in url_groups) \
                or any(a["id"] in g for g in url_groups):
            continue
        b["url"] = a["url"].replace("https://", "http://www.") + "/"
        url_groups.append([a["id"], b["id"]])
    for r in rows:
        r["note"] = f"row of {r['id']}"
    return Planted(rows, [(a, c["id"], j) for a, c, j in near], passages, carriers, url_groups)
