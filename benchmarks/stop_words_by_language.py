"""Gopher's stop-word rule per language: for every language of RefinedWeb-Europe, the share of documents that
reach the quality filter and are dropped for stop words, next to English's, and what the rule keeps of
what passes without it.

    .venv/bin/python benchmarks/stop_words_by_language.py

Two sources from ../shared/data: every HTML page (the crawl WARCs, the AEB and trafilatura benchmark pages)
through the full chain with langid.languages = en + the ten, once with the rule and once without; and
documents of at least 60 words made of consecutive Leipzig news sentences (lingua's test data), 1,000
sentences a language, through the quality filter with the document's language. Prints JSON.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
from pathlib import Path

from refinedweb.config import load_config
from refinedweb.documents import Document
from refinedweb.runtime.filter_pass import Pipeline
from refinedweb.stages.quality import QualityConfig, check_quality
from refinedweb.stats import FileAccount

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build_bench_warc  # noqa: E402

EUROPE = ["en", "de", "es", "fr", "it", "pt", "pl", "nl", "ro", "cs", "sv"]
STAGES = "filter.stages=[extract, langid, repetition, quality, line_filter]"


def pages_through_the_chain(data: Path) -> dict:
    languages = f"langid.languages=[{', '.join(EUROPE)}]"
    pages = build_bench_warc.pool_pages(data, load_config()["read"])
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for label, overrides in (("with_rule", []), ("without_rule", ["quality.min_stop_words=null"])):
        pipeline = Pipeline.build(load_config(overrides=[languages, STAGES, *overrides]))
        for page in pages:
            doc = Document(id=page.record_id, url=page.url, source="pool", html=page.html)
            drop = pipeline.process([doc], FileAccount("pool", pipeline.names))[0]
            if drop is None or drop.stage in ("quality", "line_filter"):
                counts = table[doc.language]
                if label == "with_rule":
                    counts["reach_quality"] += 1
                    counts["dropped_stop_words"] += drop is not None and drop.reason == "stop_words"
                counts[f"kept_{label}"] += drop is None
    return {lang: {**counts, "stop_word_drop_share": round(counts["dropped_stop_words"] / counts["reach_quality"], 3),
                   "kept_with_rule_of_without": round(counts["kept_with_rule"] / max(counts["kept_without_rule"], 1), 3)}
            for lang, counts in sorted(table.items()) if lang in EUROPE and counts["reach_quality"]}


def leipzig_documents(data: Path) -> dict:
    cfg = QualityConfig.from_config(load_config()["quality"])
    sentences: dict[str, list[str]] = collections.defaultdict(list)
    with gzip.open(data / "langid" / "lingua_testdata" / "sentences_all.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["lang"] in EUROPE:
                sentences[row["lang"]].append(row["text"])
    out = {}
    for lang in EUROPE:
        docs, current = [], []
        for sentence in sentences[lang]:
            current.append(sentence)
            if sum(len(s.split()) for s in current) >= 60:
                docs.append(" ".join(current))
                current = []
        reasons = collections.Counter(check_quality(doc, cfg, language=lang) for doc in docs)
        out[lang] = {"documents": len(docs), "dropped_stop_words": reasons["stop_words"],
                     "stop_word_drop_share": round(reasons["stop_words"] / len(docs), 3)}
    return out


def main() -> None:
    data = build_bench_warc.DEFAULT_DATA
    print(json.dumps({"shared_pages": pages_through_the_chain(data), "leipzig_documents": leipzig_documents(data)},
                     indent=2))


if __name__ == "__main__":
    main()
