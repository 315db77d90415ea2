"""Language ID for RefinedWeb-Europe: per-language precision and recall of lid.176 (the bundled lid.176.ftz)
at the paper's 0.65 on lingua's test sentences (Leipzig corpora, 75 languages, ../shared/data/langid).

    .venv/bin/python benchmarks/lid_europe.py

For each of en + the ten: recall = its sentences identified as it with a score >= 0.65; precision = of all
sentences (every one of the 75 languages) identified as it at >= 0.65, those that are it. Also for
documents of five consecutive sentences. Prints JSON.
"""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path

from refinedweb.config import load_config
from refinedweb.stages.langid import LangIdConfig, LanguageIdentifier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "langid" / "lingua_testdata" / "sentences_all.jsonl.gz"
EUROPE = ["en", "de", "es", "fr", "it", "pt", "pl", "nl", "ro", "cs", "sv"]


def table(items: list[tuple[str, str]], identifier: LanguageIdentifier, threshold: float) -> dict:
    predicted: collections.Counter = collections.Counter()
    correct: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    for lang, text in items:
        label, score = identifier.predict(text)
        total[lang] += 1
        if score >= threshold:
            predicted[label] += 1
            correct[label] += label == lang
    return {lang: {"texts": total[lang], "recall": round(correct[lang] / total[lang], 4),
                   "precision": round(correct[lang] / predicted[lang], 4) if predicted[lang] else None}
            for lang in EUROPE}


def main() -> None:
    cfg = load_config()["langid"]
    identifier = LanguageIdentifier(LangIdConfig.from_config(cfg))
    by_lang: dict[str, list[str]] = collections.defaultdict(list)
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            by_lang[row["lang"]].append(row["text"])
    sentences = [(lang, text) for lang, texts in by_lang.items() for text in texts]
    documents = [(lang, " ".join(texts[i:i + 5])) for lang, texts in by_lang.items() for i in range(0, len(texts), 5)]
    print(json.dumps({"languages_in_test_set": len(by_lang), "sentences": len(sentences), "threshold": cfg["threshold"],
                      "by_sentence": table(sentences, identifier, cfg["threshold"]),
                      "by_five_sentences": table(documents, identifier, cfg["threshold"])}, indent=2))


if __name__ == "__main__":
    main()
