"""Does the pre-extraction language check change outcomes? For every HTML page of the benchmark WARC:
would the pre-check drop it, and would the paper's chain (trafilatura → lid.176 ≥ threshold) keep it?

    .venv/bin/python benchmarks/pre_langid_agreement.py [--warc benchmarks/data/bench.warc.gz] [--thresholds 0.9 0.95 0.99]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from refinedweb.config import load_config
from refinedweb.stages.extract import ExtractConfig, Extractor
from refinedweb.stages.langid import LangIdConfig, LanguageIdentifier, PreExtractionCheck
from refinedweb.stages.read import Page, ReadConfig, iter_pages

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warc", default=str(HERE / "data" / "bench.warc.gz"))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    args = parser.parse_args()
    cfg = load_config()
    extractor = Extractor(ExtractConfig.from_config(cfg["extract"]))
    base = LangIdConfig.from_config(cfg["langid"])
    checks = {t: PreExtractionCheck(LanguageIdentifier(replace(base, pre_extraction_threshold=t))) for t in args.thresholds}
    final = LanguageIdentifier(base)
    rows = []
    with open(args.warc, "rb") as fh:
        for item in iter_pages(fh, ReadConfig.from_config(cfg["read"])):
            if not isinstance(item, Page):
                continue
            pre = {t: check(item.html) is not None for t, check in checks.items()}
            text, drop = extractor(item.html)
            kept = drop is None and final(text)[2] is None
            rows.append((item.url, pre, kept))
    report = {"pages": len(rows), "kept_by_paper_langid": sum(r[2] for r in rows), "thresholds": {}}
    for t in args.thresholds:
        skipped = [r for r in rows if r[1][t]]
        changed = [r[0] for r in skipped if r[2]]
        report["thresholds"][str(t)] = {"skipped_extraction": len(skipped), "outcome_changed": len(changed),
                                        "changed_urls": changed[:10]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
