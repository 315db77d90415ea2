"""PII masking throughput on one core, on real text: the extraction benchmarks' gold article bodies, the
trafilatura evaluation pages' whole text and 74k multilingual sentences (../shared/data), with the default
detectors (e-mail, IP) and with every detector. Three repetitions; prints JSON with MB/s/core.

    .venv/bin/python benchmarks/pii_speed.py
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def texts() -> list[str]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    base = SHARED / "extraction"
    out = [v["articleBody"] for v in json.loads((base / "scrapinghub_aeb" / "ground-truth.json").read_text()).values()]
    for path in sorted((base / "trafilatura_eval" / "html").glob("*.html.gz")):
        html = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        out.append(extract_plain_text(HTMLTree.parse(html), main_content=False))
    with gzip.open(SHARED / "langid" / "lingua_testdata" / "sentences_all.jsonl.gz", "rt") as fh:
        out += [json.loads(line)["text"] for line in fh]
    return out


def main() -> None:
    from refinedweb.config import load_config
    from refinedweb.stages.pii import PiiConfig, PiiMasker

    corpus = texts()
    mb = sum(len(t.encode()) for t in corpus) / 1e6
    results = {}
    for name, overrides in (("default (email, ip)", []),
                            ("all detectors", ["pii.phone=true", "pii.payment_card=true", "pii.iban=true"])):
        mask = PiiMasker(PiiConfig.from_config(load_config(overrides=overrides)["pii"]))
        rates, counts = [], {}
        for _ in range(3):
            counts = {}
            started = time.perf_counter()
            for text in corpus:
                for kind, n in mask(text)[1].items():
                    counts[kind] = counts.get(kind, 0) + n
            rates.append(mb / (time.perf_counter() - started))
        results[name] = {"mb_per_second": [round(r, 1) for r in rates], "masked": counts}
    print(json.dumps({"documents": len(corpus), "mb": round(mb, 1), "results": results}, indent=2))


if __name__ == "__main__":
    main()
