"""Extraction quality and speed on the article-extraction benchmark (181 pages with gold bodies):
mean precision / recall / F1 (4-gram shingles) and ms per page, for each backend and fallback setting.

    .venv/bin/python benchmarks/extraction_quality.py
"""

from __future__ import annotations

import gzip
import json
import statistics
import time
from pathlib import Path

from refinedweb.config import load_config
from refinedweb.evaluation import f1_from_counts, shingle_tp_fp_fn
from refinedweb.stages.extract import ExtractConfig, Extractor
from refinedweb.stages.read import decode_html

AEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "extraction" / "scrapinghub_aeb"
SETTINGS = {
    "trafilatura (default: precision + fallback)": [],
    "trafilatura, no fallback": ["extract.fallback=false"],
    "resiliparse": ["extract.backend=resiliparse"],
}


def main() -> None:
    truth = json.loads((AEB / "ground-truth.json").read_text())
    pages = {k: decode_html(gzip.decompress((AEB / "html" / f"{k}.html.gz").read_bytes()), "")[0] for k in truth}
    report = {}
    for name, overrides in SETTINGS.items():
        extractor = Extractor(ExtractConfig.from_config(load_config(overrides=overrides)["extract"]))
        counts, times = [], []
        for key, gold in truth.items():
            start = time.perf_counter()
            text, _ = extractor(pages[key])
            times.append(time.perf_counter() - start)
            counts.append(shingle_tp_fp_fn(gold["articleBody"], text))
        scores = f1_from_counts(counts)
        report[name] = {**{k: round(v, 4) for k, v in scores.items()},
                        "median_ms": round(statistics.median(times) * 1000, 1),
                        "mean_ms": round(statistics.mean(times) * 1000, 1)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
