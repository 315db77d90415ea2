"""What the per-language counters and boilerplate patterns of the line-wise corrections do on real pages: every
HTML page of ../shared/data identified (lid.176 >= 0.65) as one of RefinedWeb-Europe's ten languages goes
through the line filter with its language's lists plus "*", and with "*" only: lines changed, words removed,
documents dropped, and a sample of the lines only the language's lists change (to read).

    .venv/bin/python benchmarks/line_filter_by_language.py
"""

from __future__ import annotations

import collections
import json
import random
import sys
from pathlib import Path

from refinedweb.config import load_config
from refinedweb.stages.extract import ExtractConfig, Extractor
from refinedweb.stages.langid import LangIdConfig, LanguageIdentifier
from refinedweb.stages.line_filter import LineFilter, LineFilterConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_bench_warc  # noqa: E402

EUROPE = {"de", "es", "fr", "it", "pt", "pl", "nl", "ro", "cs", "sv"}


def main() -> None:
    cfg = load_config()
    extract = Extractor(ExtractConfig.from_config(cfg["extract"]))
    identify = LanguageIdentifier(LangIdConfig.from_config({**cfg["langid"], "languages": []}))
    lines_cfg = LineFilterConfig.from_config(cfg["line_filter"])
    stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    changed: dict[str, list[str]] = collections.defaultdict(list)
    for page in build_bench_warc.pool_pages(build_bench_warc.DEFAULT_DATA, cfg["read"]):
        text, drop = extract(page.html)
        language, score = identify.predict(text) if drop is None else ("", 0.0)
        if language not in EUROPE or score < cfg["langid"]["threshold"]:
            continue
        own, every = LineFilter(lines_cfg, language), LineFilter(lines_cfg, "")
        counts = stats[language]
        counts["documents"] += 1
        for line in text.split("\n"):
            if own.classify(line)[0] != every.classify(line)[0]:
                counts["lines_changed_by_own_lists"] += 1
                changed[language].append(line.strip()[:90])
        with_own, star_only = own(text), every(text)
        counts["dropped_with_own_lists"] += with_own[1] is not None
        counts["dropped_with_star_only"] += star_only[1] is not None
        counts["words_removed_with_own_lists"] += with_own[2]
        counts["words_removed_with_star_only"] += star_only[2]
    random.seed(1)
    print(json.dumps({"by_language": stats,
                      "sample_of_lines_changed_by_own_lists": {lang: random.sample(lines, min(25, len(lines)))
                                                               for lang, lines in changed.items()}},
                     indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
