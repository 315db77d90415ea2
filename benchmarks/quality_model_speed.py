"""The quality classifier's cost: training time for 100k documents (DCLM's settings, one thread), scoring
documents/s on one core, and the quality_model stage's share of the filter chain's time.

    .venv/bin/python benchmarks/quality_model_speed.py [--documents 100000] [--seeds 0 1 2]

Training documents are made from real text in ../shared/data: a positive is 3-30 paragraphs drawn at random
from the extraction benchmarks' gold article bodies, a negative as many lines drawn from the whole-page text of
the same benchmarks' pages (navigation, footers, article text and all). They have realistic lengths and
vocabulary; the held-out ROC-AUC says little about real quality filtering (it is printed, not claimed).
The stage's share is measured in the filter pass over benchmarks/data/bench.warc.gz with quality_model after
line_filter (threshold 0: every document is scored, none dropped). Prints JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data" / "extraction"


def pools() -> tuple[list[str], list[str]]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    good, page_lines = [], []
    truth = json.loads((SHARED / "scrapinghub_aeb" / "ground-truth.json").read_text())
    good += [p for v in truth.values() for p in v["articleBody"].split("\n") if len(p.split()) >= 5]
    html_files = sorted((SHARED / "scrapinghub_aeb" / "html").glob("*.html.gz")) + \
        sorted((SHARED / "trafilatura_eval" / "html").glob("*.html.gz"))
    for path in html_files:
        html = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        text = extract_plain_text(HTMLTree.parse(html), main_content=False)
        page_lines += [line for line in text.split("\n") if line.strip()]
    return good, page_lines


def corpus(folder: Path, documents: int, seed: int, good: list[str], lines: list[str]) -> tuple[Path, Path, int]:
    rng = random.Random(seed)
    words = 0
    paths = []
    for name, pool in (("positive", good), ("negative", lines)):
        path = folder / f"{name}-{seed}.jsonl"
        with open(path, "w") as fh:
            for i in range(documents // 2):
                text = "\n".join(rng.choice(pool) for _ in range(rng.randint(3, 30)))
                words += len(text.split())
                fh.write(json.dumps({"id": f"{name}-{i}", "text": text}) + "\n")
        paths.append(path)
    return paths[0], paths[1], words


def train(positive: Path, negative: Path, out: Path, documents: int) -> dict:
    from refinedweb.classifier.train import train_classifier
    from refinedweb.config import load_config

    cfg = load_config(overrides=[f"classifier.max_documents_per_class={documents // 2}", "classifier.held_out=0.1"])
    started = time.perf_counter()
    card = train_classifier([str(positive)], [str(negative)], str(out), cfg, log=lambda line: None)
    return {"wall_seconds": round(time.perf_counter() - started, 1), "training_seconds": card["training_seconds"],
            "model_mb": round(card["bytes"] / 2**20, 1), "roc_auc_held_out": card["metrics"]["roc_auc"],
            "train_documents": card["classes"]["positive"]["train"] + card["classes"]["negative"]["train"]}


def scoring(model: Path, positive: Path, negative: Path, n: int = 20000) -> dict:
    from refinedweb.classifier.model import QualityModel

    texts = [json.loads(line)["text"] for path in (positive, negative) for line in open(path)][:: 2][:n]
    scorer = QualityModel(str(model))
    started = time.perf_counter()
    for text in texts:
        scorer.score(text)
    seconds = time.perf_counter() - started
    mb = sum(len(t.encode()) for t in texts) / 1e6
    return {"documents": len(texts), "seconds": round(seconds, 2), "documents_per_second": round(len(texts) / seconds),
            "mb_per_second": round(mb / seconds, 1), "mean_kb": round(mb * 1000 / len(texts), 2)}


def chain_share(model: Path) -> dict:
    from filter_speed import blocklist_override, ensure_bench_warc

    from refinedweb.config import load_config
    from refinedweb.runtime.filter_pass import Pipeline, filter_file

    warc = ensure_bench_warc(HERE / "data" / "bench.warc.gz", 1500)
    cfg = load_config(overrides=blocklist_override() + [
        "filter.stages=[url_filter, pre_langid, extract, langid, repetition, quality, line_filter, quality_model, tokens]",
        f"quality_model.model={model}", "quality_model.threshold=0.0"])
    pipeline = Pipeline.build(cfg)
    with tempfile.TemporaryDirectory() as out:
        result = filter_file(str(warc), cfg, out, pipeline)
    seconds = {k: v["seconds"] for k, v in result["stages"].items()}
    chain = sum(v for k, v in seconds.items() if k != "quality_model")
    docs = result["stages"]["quality_model"]["docs_in"]
    return {"warc": str(warc), "records": result["records"], "documents_scored": docs,
            "quality_model_seconds": round(seconds["quality_model"], 3), "other_stages_seconds": round(chain, 2),
            "share_of_chain": round(seconds["quality_model"] / (chain + seconds["quality_model"]), 4),
            "ms_per_document": round(1000 * seconds["quality_model"] / max(1, docs), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    good, lines = pools()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in args.seeds:
            positive, negative, words = corpus(folder, args.documents, seed, good, lines)
            model = folder / f"model-{seed}.bin"
            run = {"seed": seed, "documents": args.documents, "words": words, **train(positive, negative, model,
                                                                                      args.documents)}
            run["scoring"] = scoring(model, positive, negative)
            runs.append(run)
        share = chain_share(folder / f"model-{args.seeds[0]}.bin")
    seconds = [r["training_seconds"] for r in runs]
    rates = [r["scoring"]["documents_per_second"] for r in runs]
    print(json.dumps({"cpu": os.cpu_count(), "pools": {"good_paragraphs": len(good), "page_lines": len(lines)},
                      "runs": runs,
                      "training_seconds": {"min": min(seconds), "max": max(seconds), "median": statistics.median(seconds)},
                      "scoring_documents_per_second": {"min": min(rates), "max": max(rates)},
                      "filter_chain": share,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}, indent=2))


if __name__ == "__main__":
    main()
