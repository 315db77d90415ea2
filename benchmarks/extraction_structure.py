"""Text structure of what the filter keeps, on real pages: the share of kept characters that are table
markup (`|`), and the share of kept documents that are one line of >= 100 words (a layout table's cells
joined), with trafilatura's own text rendering and with ours (`flatten_tables`).

Pages: every HTML response of the shared WARCs (2008-2024 crawls, many languages) plus both extraction
benchmarks' pages (AEB, trafilatura's evaluation set), through the packaged filter stages in-process.

    .venv/bin/python benchmarks/extraction_structure.py [results.json]
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

from refinedweb.config import load_config
from refinedweb.documents import Document
from refinedweb.runtime.filter_pass import Pipeline
from refinedweb.stages import extract
from refinedweb.stages.blocklist import load_blocklist
from refinedweb.stages.read import ReadConfig, Skip, decode_html, iter_pages
from refinedweb.stats import FileAccount

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pages() -> list[tuple[str, str, str]]:
    """(source, url, html) of every page."""
    out = []
    read = ReadConfig.from_config(load_config()["read"])
    for warc in sorted((SHARED / "warc").glob("*.warc.gz")):
        if warc.name.endswith((".wat.gz", ".wet.gz")) or "clipped" in warc.name:
            continue
        with open(warc, "rb") as stream:
            for page in iter_pages(stream, read):
                if not isinstance(page, Skip):
                    out.append((warc.name, page.url, page.html))
    for path in sorted((SHARED / "extraction" / "scrapinghub_aeb" / "html").glob("*.html.gz")):
        out.append(("aeb", f"https://aeb.example/{path.stem}", decode_html(gzip.decompress(path.read_bytes()), "")[0]))
    for path in sorted((SHARED / "extraction" / "trafilatura_eval" / "html").iterdir()):
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        out.append(("trafilatura_eval", f"https://eval.example/{path.name}", decode_html(raw, "")[0]))
    return out


def measure(all_pages, pipeline) -> dict:
    account = FileAccount("pages", pipeline.names)
    docs = [Document(id=str(i), url=url, source=src, html=html) for i, (src, url, html) in enumerate(all_pages)]
    started = time.perf_counter()
    verdicts = []
    for start in range(0, len(docs), 64):
        verdicts += pipeline.process(docs[start:start + 64], account)
    kept = [d for d, v in zip(docs, verdicts) if v is None]
    chars = sum(len(d.text) for d in kept)
    one_liners = [d for d in kept if "\n" not in d.text and len(d.text.split()) >= 100]
    return {"pages": len(docs), "kept": len(kept), "kept_chars": chars,
            "pipe_share_of_kept_chars": round(sum(d.text.count("|") for d in kept) / max(chars, 1), 5),
            "docs_with_pipe_lines": sum(any(line.startswith("|") for line in d.text.splitlines()) for d in kept),
            "one_line_100_words_share": round(len(one_liners) / max(len(kept), 1), 4),
            "lines_per_kept_doc": round(sum(d.text.count("\n") + 1 for d in kept) / max(len(kept), 1), 1),
            "seconds": round(time.perf_counter() - started, 1)}


def main(target: str | None) -> None:
    blocklist_path = SHARED / "blocklists" / "datatrove_fineweb" / "url_filterblacklistsv0_3_0.tar.gz"
    cfg = load_config(overrides=[f"url_filter.blocklist=[{blocklist_path}]"])
    blocklist = load_blocklist(cfg["url_filter"]["blocklist"], cfg["url_filter"]["categories"])
    all_pages = pages()
    report = {"date": time.strftime("%Y-%m-%d"), "pages": len(all_pages)}
    ours = extract.flatten_tables
    for name, flatten in (("trafilatura_text", lambda body: None), ("ours", ours)):
        extract.flatten_tables = flatten
        report[name] = measure(all_pages, Pipeline.build(cfg, blocklist))
        print(name, report[name], flush=True)
    extract.flatten_tables = ours
    if target:
        Path(target).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
