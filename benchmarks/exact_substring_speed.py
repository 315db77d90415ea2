"""Exact-substring deduplication throughput on one core (the suffix-array reference, refinedweb/dedup/reference/suffix_array.py), end to end:
GPT-2 tokenisation + suffix array + LCP + finding spans + removing them from the text.

    .venv/bin/python benchmarks/exact_substring_speed.py [--mb 30] [--repeats 3] [--corpus mixed|english]

Corpus (real text, built before timing, deterministic):

* ``english``: the ``articleBody`` fields of ../shared/data/extraction/scrapinghub_aeb/ground-truth.json
  (181 English news articles, 0.9 MB);
* ``mixed`` (default): those plus the main text of the 990 pages of trafilatura_eval/html, extracted with
  Resiliparse (~6 MB; English, German, French, Chinese, ...).

The distinct documents are copied until the corpus reaches ``--mb`` MB. Every copy after the first has 1 unit
in 5 (a word, or a CJK character) replaced by a random unit of the corpus (so copies are near-duplicates
whose exact repeats of >= 50 tokens are rare, as after MinHash dedup), and 10% of all documents get one of
300 "boilerplate" passages (paragraphs of 60-400 tokens taken from the corpus) inserted between two
paragraphs. Documents are shuffled. The whole corpus is one part (one suffix array), as ``dedup_part`` sees it.

Timing: ``dedup_part`` runs ``--repeats`` times in this process (single-threaded: tiktoken's
``encode_to_numpy`` per document, no thread pool; OMP_NUM_THREADS=1 for libdivsufsort); MB/s is UTF-8 bytes
of input per second, by wall clock and by this process's CPU time (the machine may be shared: CPU time is the
fairer "per core" figure). Phases: tokenize (with concatenation), prefilter (candidate regions), suffix_array,
lcp, find, remove. ``--no-prefilter`` sorts the whole part instead (same output, checked). Peak memory of
the suffix-array part (prefilter, suffix array, LCP, find) is measured in a fresh process.

Prints JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data" / "extraction"
sys.path.insert(0, str(REPO))
# One core: libdivsufsort is built with OpenMP and would otherwise use every core (as a Ray task would not:
# Ray sets OMP_NUM_THREADS=1 in its workers). Must be set before pydivsufsort is loaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Units of perturbation: a CJK/kana/hangul character, or a run of other non-space characters.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_UNITS = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+|\\s+")


def real_texts(corpus: str) -> list[str]:
    truth = json.loads((SHARED / "scrapinghub_aeb" / "ground-truth.json").read_text())
    texts = [v["articleBody"] for v in truth.values() if v.get("articleBody")]
    if corpus == "english":
        return texts
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    for folder in (SHARED / "trafilatura_eval" / "html",):
        for path in sorted(folder.iterdir()):
            raw = path.read_bytes()
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
            text = extract_plain_text(HTMLTree.parse(bytes_to_str(raw, detect_encoding(raw))), main_content=True)
            if len(text.split()) >= 50:
                texts.append(text)
    return texts


def build_corpus(base: list[str], target_bytes: int, seed: int = 1) -> list[str]:
    from refinedweb.stages.tokens import get_encoding

    rng = random.Random(seed)
    enc = get_encoding("gpt2")
    units = sorted({u for t in base for u in _UNITS.findall(t) if not u.isspace()})
    paragraphs = [p for t in base for p in t.split("\n") if 60 <= len(enc.encode_ordinary(p)) <= 400]
    passages = rng.sample(paragraphs, min(300, len(paragraphs)))
    docs: list[str] = []
    size = 0
    copy = 0
    while size < target_bytes:
        for text in base:
            if copy:
                pieces = _UNITS.findall(text)
                for i, unit in enumerate(pieces):
                    if not unit.isspace() and rng.random() < 1 / 5:
                        pieces[i] = rng.choice(units)
                text = "".join(pieces)
            if rng.random() < 0.10:
                paras = text.split("\n\n")
                paras.insert(rng.randrange(len(paras) + 1), rng.choice(passages))
                text = "\n\n".join(paras)
            docs.append(text)
            size += len(text.encode("utf-8"))
            if size >= target_bytes:
                break
        copy += 1
    rng.shuffle(docs)
    return docs


def peak_memory(docs: list[str]) -> dict:
    """Peak memory of the suffix-array part (suffix array + LCP + find) in a fresh process, per token, on top
    of the concatenated 2-byte token string (counted in, 2 B/token) and of the texts (not counted)."""
    import numpy as np

    from refinedweb.dedup.kernels.windows import tokenize

    tokens = tokenize(docs)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/tokens.npy", np.concatenate(tokens))
        np.save(f"{tmp}/lengths.npy", np.array([len(t) for t in tokens]))
        code = (
            "import os, sys, json, numpy as np\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from refinedweb.dedup.reference.suffix_array import _concatenate, _find\n"
            f"flat = np.load({tmp + '/tokens.npy'!r}); lengths = np.load({tmp + '/lengths.npy'!r})\n"
            "part = _concatenate(np.split(flat, np.cumsum(lengths)[:-1])); del flat\n"
            "status = lambda key: [int(line.split()[1]) * 1024 for line in open('/proc/self/status')\n"
            "                      if line.startswith(key)][0]\n"
            "open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current RSS\n"
            "base = status('VmRSS'); _find(part, 50, 'keep_first'); peak = status('VmHWM')\n"
            "print(json.dumps({'tokens': int(lengths.sum()), 'extra': peak - base, 'text': part.text.nbytes}))\n"
        )
        try:
            out = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                            text=True).stdout)
        except (subprocess.CalledProcessError, ValueError) as exc:  # e.g. no /proc/self/clear_refs
            return {"error": str(exc)}
    total = out["extra"] + out["text"]
    return {"tokens": out["tokens"], "peak_bytes": total, "bytes_per_token": round(total / out["tokens"], 1),
            "note": "concatenated token string + suffix array + LCP + find; the input texts not counted"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", choices=("mixed", "english"), default="mixed")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-prefilter", action="store_true", help="suffix array of the whole part")
    args = parser.parse_args()

    from refinedweb.dedup.kernels.windows import ExactSubstringConfig, _token_byte_lengths
    from refinedweb.dedup.reference import suffix_array as es
    from refinedweb.dedup.reference.suffix_array import dedup_part
    from refinedweb.stages.tokens import get_encoding

    t0 = time.perf_counter()
    docs = build_corpus(real_texts(args.corpus), int(args.mb * 1e6))
    build = time.perf_counter() - t0
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    get_encoding("gpt2")
    _token_byte_lengths()  # one-off set-up, not per part
    cfg = ExactSubstringConfig()
    part = es._concatenate(es.tokenize(docs))
    lo, hi = es._candidate_regions(part, cfg.min_tokens)
    candidate_share = int((hi - lo).sum()) / len(part.text)
    same = es._find(part, cfg.min_tokens, cfg.policy, prefilter=True) == \
        es._find(part, cfg.min_tokens, cfg.policy, prefilter=False)   # untimed check: the prefilter is exact
    del part, lo, hi
    if args.no_prefilter:
        es._PREFILTER_MAX_SHARE = 0.0

    runs = []
    result = None
    for _ in range(args.repeats):
        timings: dict[str, float] = {}
        wall, cpu = time.perf_counter(), time.process_time()
        result = dedup_part(docs, cfg, timings=timings)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        runs.append({"wall": wall, "cpu": cpu, "phases": timings})
    assert result is not None

    walls = [r["wall"] for r in runs]
    cpus = [r["cpu"] for r in runs]
    phases = {k: statistics.median(r["phases"][k] for r in runs) for k in runs[0]["phases"]}
    total = sum(phases.values())
    mb = nbytes / 1e6
    removed = sum(result.removed_chars)
    report = {
        "corpus": args.corpus, "documents": len(docs), "megabytes": round(mb, 2), "tokens": result.tokens,
        "bytes_per_token": round(nbytes / result.tokens, 2), "corpus_build_seconds": round(build, 1),
        "duplicate_spans": result.duplicate_spans,
        "candidate_region_share": round(candidate_share, 3),
        "prefilter": not args.no_prefilter,
        "prefilter_output_identical": same,
        "chars_removed_fraction": round(removed / sum(len(d) for d in docs), 4),
        "documents_dropped": sum(t is None for t in result.texts),
        "repeats": args.repeats,
        "wall_seconds": [round(w, 2) for w in walls],
        "cpu_seconds": [round(c, 2) for c in cpus],
        "mb_per_s_wall": {"best": round(mb / min(walls), 2), "median": round(mb / statistics.median(walls), 2)},
        "mb_per_s_cpu": {"best": round(mb / min(cpus), 2), "median": round(mb / statistics.median(cpus), 2)},
        "phase_seconds_median": {k: round(v, 3) for k, v in phases.items()},
        "phase_share": {k: round(v / total, 3) for k, v in phases.items()},
        "phase_mb_per_s": {k: round(mb / v, 1) for k, v in phases.items()},
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if not args.no_memory:
        report["find_peak_memory"] = peak_memory(docs)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
