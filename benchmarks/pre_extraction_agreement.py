"""Does the pre-extraction language check change outcomes? Every HTML page of the shared data goes through
the whole filter chain twice: without the check (the paper's path: trafilatura, then lid.176 at 0.65 and
the rest) and with it. A page the check drops that the full path keeps is a changed outcome.

    .venv/bin/python benchmarks/pre_extraction_agreement.py [--languages en de,fr en,de,es,...] [--min-scores 0.01 0.05]

The pages are those of build_bench_warc.py without a seed (each page once), counted per source. For a
language set L the full path's outcome is read from one run that accepts every language: kept for L =
kept there with its language in L. Prints JSON: pages checked, dropped before extraction, outcomes changed,
agreement, and the seconds of extraction the check saved against the seconds it cost.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from refinedweb.config import load_config
from refinedweb.documents import Document
from refinedweb.runtime.filter_pass import Pipeline
from refinedweb.stages.blocklist import load_blocklist
from refinedweb.stages.langid import LangIdConfig, LanguageIdentifier, PreExtractionCheck
from refinedweb.stages.read import Page
from refinedweb.stats import FileAccount

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build_bench_warc  # noqa: E402
from filter_speed import blocklist_override  # noqa: E402


def sources_by_record_id(data: Path) -> dict[str, str]:
    ids = {}
    for index, (source, page, _) in enumerate(build_bench_warc.pool(data)):
        url = page if isinstance(page, str) else page.rec_headers.get_header("WARC-Target-URI") or ""
        ids[build_bench_warc.record_id(url, index)] = source if not source.startswith("warc/") else "crawl WARCs"
    return ids


def full_path(pages: list[Page], cfg: dict) -> list[dict]:
    """Each page through every stage but the pre-check, accepting any language: verdict, language, seconds."""
    blocklist = load_blocklist(cfg["url_filter"]["blocklist"], cfg["url_filter"]["categories"])
    pipeline = Pipeline.build(cfg, blocklist)
    rows = []
    for page in pages:
        doc = Document(id=page.record_id, url=page.url, source="pool", html=page.html)
        t0 = time.perf_counter()
        drop = pipeline.process([doc], FileAccount("pool", pipeline.names))[0]
        rows.append({"verdict": None if drop is None else f"{drop.stage}:{drop.reason}", "language": doc.language,
                     "seconds": time.perf_counter() - t0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=build_bench_warc.DEFAULT_DATA)
    parser.add_argument("--languages", nargs="+", default=["en", "de", "fr", "en,de,es,fr,it,pt,pl,nl,ro,cs,sv"])
    parser.add_argument("--min-scores", type=float, nargs="+", default=[0.01])
    parser.add_argument("--chars", type=int, default=None, help="pre_extraction_chars (default: the config's)")
    args = parser.parse_args()
    base = load_config(overrides=blocklist_override() + ["langid.languages=[]", "filter.stages=[url_filter, extract, "
                                                         "langid, repetition, quality, line_filter, tokens]"])
    source_of = sources_by_record_id(args.data)
    pages = build_bench_warc.pool_pages(args.data, base["read"])
    outcomes = full_path(pages, base)
    report: dict = {"pages": len(pages), "by_source": dict(collections.Counter(source_of[p.record_id] for p in pages)),
                    "full_path_kept_any_language": sum(o["verdict"] is None for o in outcomes), "sets": {}}
    langid_cfg = LangIdConfig.from_config(base["langid"])
    for languages in args.languages:
        accepted = tuple(languages.split(","))
        for min_score in args.min_scores:
            cfg = replace(langid_cfg, languages=accepted, pre_extraction_min_score=min_score,
                          pre_extraction_chars=args.chars or langid_cfg.pre_extraction_chars)
            check = PreExtractionCheck(LanguageIdentifier(cfg))
            per_source: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
            changed, cost, saved = [], 0.0, 0.0
            for page, outcome in zip(pages, outcomes):
                if (outcome["verdict"] or "").startswith("url_filter:"):
                    continue                   # the URL filter runs first either way
                counts = per_source[source_of[page.record_id]]
                kept = outcome["verdict"] is None and outcome["language"] in accepted
                t0 = time.perf_counter()
                dropped_early = check(page.html) is not None
                cost += time.perf_counter() - t0
                counts["pages"] += 1
                counts["kept_by_full_path"] += kept
                if dropped_early:
                    counts["dropped_before_extraction"] += 1
                    saved += outcome["seconds"]
                    if kept:
                        counts["changed"] += 1
                        changed.append(page.url)
            total = sum(c["pages"] for c in per_source.values())
            n_changed = len(changed)
            report["sets"][f"{languages} @ {min_score}"] = {
                "pages": total, "dropped_before_extraction": sum(c["dropped_before_extraction"] for c in per_source.values()),
                "kept_by_full_path": sum(c["kept_by_full_path"] for c in per_source.values()),
                "changed": n_changed, "agreement": round(1 - n_changed / total, 5) if total else None,
                "check_seconds": round(cost, 2), "extraction_seconds_saved": round(saved, 2),
                "by_source": {k: dict(v) for k, v in sorted(per_source.items())}, "changed_urls": changed[:10]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
