#!/usr/bin/env python
"""Build the filter-stage benchmark WARC from the real pages in ``/work/shared/data``.

The output is a ``.warc.gz`` with one gzip member per record (``warcio``'s
``WARCWriter(gzip=True)``): one ``warcinfo`` record followed by ``--pages``
``response`` records (default 1500), taken in this order:

1. every page of ``extraction/scrapinghub_aeb/html/*.html.gz`` (URL from
   ``ground-truth.json``; 181 pages);
2. every page of ``extraction/trafilatura_eval/html/*.html.gz`` (URL = the key of
   ``evaldata.json`` whose ``file`` names the page when that key is an
   ``http(s)://`` URL, else ``https://example.org/trafilatura-eval/<name>``;
   989 pages);
3. the HTML ``response`` records (HTTP ``Content-Type`` containing ``html``) of
   ``warc/*.warc.gz``, permissively licensed crawls first (Apache-2.0 / MIT),
   the GPL ones only if still short of ``--pages``; the truncated
   ``resiliparse_clipped.warc.gz`` is skipped.

Records of sources 1 and 2 get a synthetic HTTP header block
``HTTP/1.1 200 OK`` + ``Content-Type: text/html[; charset=X]`` (X = the
``<meta charset>`` declared in the page, else ``utf-8`` if the bytes are valid
UTF-8, else no charset) + ``Content-Length``.  Records of source 3 keep their
real WARC headers (URI, date, IP, identified payload type, ...) and their real
HTTP status line and headers, except that a ``Transfer-Encoding`` /
``Content-Encoding`` is decoded and the header renamed ``X-Crawler-*`` and
``Content-Length`` set to the stored body (what CommonCrawl has done since
2019); references to records that are not copied (``WARC-Warcinfo-ID``,
``WARC-Concurrent-To``, ...) and the digests (recomputed by warcio) are dropped.
Every response record carries ``WARC-Identified-Payload-Type`` (as CommonCrawl's
do; the original value is kept when present).

With ``--seed S`` the same pool is shuffled with ``random.Random(S)`` instead,
and passed through again in a fresh order as often as ``--pages`` needs (a
6,000-record mix holds each page about four times): the mixed crawls of the
filter benchmark against datatrove (``benchmarks/filter_vs_datatrove.py``).

Everything is deterministic: ``WARC-Record-ID`` = ``uuid5(NAMESPACE_URL,
"<url>#<index>")``, synthetic dates are a fixed epoch + index seconds, input files
are processed in sorted order, and zlib writes a zero mtime in every gzip header,
so two runs produce byte-identical files.

Run with the project venv (it has warcio)::

    /work/main/.venv/bin/python benchmarks/build_bench_warc.py --out benchmarks/data/bench.warc.gz [--pages 1500]
"""

from __future__ import annotations

import argparse
import codecs
import collections
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import random
import re
import sys
import uuid
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

DEFAULT_DATA = Path(os.environ.get("REFINEDWEB_SHARED_DATA", "/work/shared/data"))

# Permissive (Apache-2.0 / MIT) crawls first, in this fixed order; GPL ones after.
PERMISSIVE_WARCS = [
    "resiliparse_warcfile.warc.gz",  # CC-MAIN-2020-34, Apache-2.0
    "cc_whirlwind_whirlwind.warc.gz",  # CC-MAIN-2024-22, Apache-2.0
    "dolma_sample-0000.warc.gz",  # Apache-2.0
    "dolma_sample-0001.warc.gz",  # Apache-2.0
    "cc2010_arc2warc_1262850551027_8.warc.gz",  # MIT
    "cc2008_arc2warc_1213893279526_0.warc.gz",  # MIT
    "aut_example.warc.gz",  # Apache-2.0
]
GPL_WARCS = [
    "ukwa_BL-20140325121225068-00000.warc.gz",
    "ukwa_BL-20140325122341434-00000.warc.gz",
    "ukwa_IAH-urls-wget.warc.gz",
    "pywb_iana.warc.gz",
    "warc2zim_solidaritenum.warc.gz",
    "warc2zim_cc.warc.gz",
]
SKIP_WARCS = {"resiliparse_clipped.warc.gz"}  # truncated gzip member (error-handling sample)

SYNTH_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)
# WARC headers of a source record that are not copied: recomputed by warcio, or
# references to records that are not in the benchmark file.
DROP_WARC_HEADERS = {
    "warc-record-id",
    "warc-type",
    "content-length",
    "content-type",
    "warc-block-digest",
    "warc-payload-digest",
    "warc-warcinfo-id",
    "warc-concurrent-to",
    "warc-refers-to",
    "warc-filename",
    "warc-segment-number",
    "warc-segment-origin-id",
    "warc-segment-total-length",
}


def record_id(url: str, index: int) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{url}#{index}')}>"


def synth_date(index: int) -> str:
    return (SYNTH_EPOCH + dt.timedelta(seconds=index)).strftime("%Y-%m-%dT%H:%M:%SZ")


def detect_charset(body: bytes) -> str | None:
    """Declared ``<meta charset>`` (if a codec knows it), else utf-8 if valid UTF-8, else None."""
    m = META_CHARSET.search(body[:8192]) or META_CHARSET.search(body)
    if m:
        name = m.group(1).decode("ascii", "replace").strip().lower()
        try:
            codecs.lookup(name)
            return name
        except LookupError:
            pass
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------- sources


def iter_aeb(data: Path):
    """(source, url, body) for every scrapinghub article-extraction-benchmark page."""
    root = data / "extraction" / "scrapinghub_aeb"
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    for path in sorted((root / "html").glob("*.html.gz")):
        page_id = path.name[: -len(".html.gz")]
        url = truth.get(page_id, {}).get("url") or f"https://example.org/scrapinghub-aeb/{page_id}"
        yield "scrapinghub_aeb", url, gzip.decompress(path.read_bytes())


def iter_trafilatura_eval(data: Path):
    root = data / "extraction" / "trafilatura_eval"
    urls: dict[str, str] = {}
    eval_path = root / "evaldata.json"
    if eval_path.exists():
        for key, entry in json.loads(eval_path.read_text(encoding="utf-8")).items():
            key = key.strip().replace(" ", "%20")  # a few keys end in / contain a space
            if key.startswith(("http://", "https://")) and entry.get("file"):
                urls.setdefault(entry["file"], key)
    for path in sorted((root / "html").glob("*.html.gz")):
        name = path.name[: -len(".gz")]  # evaldata's "file" keeps the .html suffix
        url = urls.get(name) or f"https://example.org/trafilatura-eval/{name}"
        yield "trafilatura_eval", url, gzip.decompress(path.read_bytes())


def warc_files(data: Path) -> list[Path]:
    root = data / "warc"
    present = {p.name for p in root.glob("*.warc.gz")}
    ordered = [n for n in PERMISSIVE_WARCS + GPL_WARCS if n in present]
    # any other WARC dropped into shared/data later: after the known ones, sorted
    ordered += sorted(present - set(ordered) - SKIP_WARCS)
    return [root / n for n in ordered if n not in SKIP_WARCS]


def iter_warc_html(data: Path):
    """(source, record) for every HTML response record of the shared WARCs."""
    for path in warc_files(data):
        with open(path, "rb") as fh:
            try:
                for rec in ArchiveIterator(fh):
                    if rec.rec_type != "response" or rec.http_headers is None:
                        continue
                    ctype = (rec.http_headers.get_header("Content-Type") or "").lower()
                    if "html" not in ctype:
                        continue
                    # content_stream() undoes chunked transfer / content encodings
                    body = rec.content_stream().read()
                    yield path.name, rec, body
            except Exception as exc:  # a damaged tail: keep what was read, say so
                print(f"warning: {path.name}: stopped reading: {exc!r}", file=sys.stderr)


# ---------------------------------------------------------------- records


def synthetic_response(writer: WARCWriter, url: str, body: bytes, index: int):
    charset = detect_charset(body)
    ctype = "text/html" + (f"; charset={charset}" if charset else "")
    http_headers = StatusAndHeaders(
        "200 OK",
        [("Content-Type", ctype), ("Content-Length", str(len(body)))],
        protocol="HTTP/1.1",
    )
    warc_headers = {
        "WARC-Record-ID": record_id(url, index),
        "WARC-Date": synth_date(index),
        "WARC-Identified-Payload-Type": "text/html",
    }
    return writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(body),
        length=len(body),
        warc_headers_dict=warc_headers,
        http_headers=http_headers,
    )


def copied_response(writer: WARCWriter, rec, body: bytes, index: int):
    url = rec.rec_headers.get_header("WARC-Target-URI") or rec.rec_headers.get_header("uri") or ""
    warc_headers: dict[str, str] = {}
    for name, value in rec.rec_headers.headers:
        if name.lower() in DROP_WARC_HEADERS:
            continue
        warc_headers.setdefault(name, value)
    warc_headers["WARC-Record-ID"] = record_id(url, index)
    if not rec.rec_headers.get_header("WARC-Date"):
        warc_headers["WARC-Date"] = synth_date(index)
    src_ctype = (rec.http_headers.get_header("Content-Type") or "").lower()
    if not rec.rec_headers.get_header("WARC-Identified-Payload-Type"):
        warc_headers["WARC-Identified-Payload-Type"] = (
            "application/xhtml+xml" if "xhtml" in src_ctype else "text/html"
        )

    headers = []
    length_ok = False
    for name, value in rec.http_headers.headers:
        low = name.lower()
        if low in ("transfer-encoding", "content-encoding"):
            # content_stream() decoded the body: keep the header for the record only
            headers.append((f"X-Crawler-{name}", value))
        elif low == "content-length":
            if value.strip() == str(len(body)) and not length_ok:
                headers.append((name, value))
                length_ok = True
            else:
                headers.append((f"X-Crawler-{name}", value))
        else:
            headers.append((name, value))
    if not length_ok:
        headers.append(("Content-Length", str(len(body))))
    http_headers = StatusAndHeaders(
        rec.http_headers.statusline, headers, protocol=rec.http_headers.protocol or "HTTP/1.0"
    )
    return writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(body),
        length=len(body),
        warc_headers_dict=warc_headers,
        http_headers=http_headers,
    )


def warcinfo_record(writer: WARCWriter, filename: str, pages: int):
    info = (
        "software: refinedweb benchmarks/build_bench_warc.py\r\n"
        "format: WARC File Format 1.0\r\n"
        f"description: filter-stage benchmark, {pages} HTML responses from shared/data "
        "(scrapinghub_aeb, trafilatura_eval, warc/*)\r\n"
    ).encode("utf-8")
    return writer.create_warc_record(
        "",
        "warcinfo",
        payload=io.BytesIO(info),
        length=len(info),
        warc_content_type="application/warc-fields",
        warc_headers_dict={
            "WARC-Record-ID": record_id(f"warcinfo:{filename}", 0),
            "WARC-Date": SYNTH_EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "WARC-Filename": filename,
        },
    )


def pool(data: Path) -> list[tuple[str, object, bytes]]:
    """Every page of the three sources, in the fixed order: (source, url or WARC record, body)."""
    pages: list[tuple[str, object, bytes]] = list(iter_aeb(data)) + list(iter_trafilatura_eval(data))
    pages += [(f"warc/{name}", rec, body) for name, rec, body in iter_warc_html(data)]
    return pages


def mixed_order(size: int, pages: int, seed: int | None) -> list[int]:
    """Indices into the pool: the first ``pages`` in order (no seed), or a seeded mix.

    With a seed the pool is shuffled, and shuffled again for every further pass
    when more records than pages are asked for, so a 6,000-record file holds
    each page about four times, in a different place each time.
    """
    if seed is None:
        return list(range(min(size, pages)))
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < pages:
        batch = list(range(size))
        rng.shuffle(batch)
        order += batch
    return order[:pages]


MIXES = ("uniform", "big", "news")


def weighted_order(everything: list, pages: int, seed: int, mix: str) -> list[int]:
    """A mix built differently from the uniform one, drawn with replacement: `big` takes a page with
    probability proportional to its size (bigger pages), `news` only the English news articles (AEB) and the
    real crawls (old and new), no trafilatura-eval page."""
    rng = random.Random(seed)
    if mix == "big":
        weights = [len(body) for _, _, body in everything]
    else:
        weights = [0 if source.startswith("trafilatura") else 1 for source, _, _ in everything]
    return rng.choices(range(len(everything)), weights=weights, k=pages)


def build(out: Path, pages: int, data: Path, seed: int | None = None, mix: str = "uniform") -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    counts: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[str] = collections.Counter()
    everything = pool(data)
    order = (mixed_order(len(everything), pages, seed) if mix == "uniform" or seed is None
             else weighted_order(everything, pages, seed, mix))
    with open(tmp, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(warcinfo_record(writer, out.name, pages))
        for index, which in enumerate(order):
            source, page, body = everything[which]
            if isinstance(page, str):
                writer.write_record(synthetic_response(writer, page, body, index))
                statuses["200"] += 1
            else:
                writer.write_record(copied_response(writer, page, body, index))
                statuses[page.http_headers.get_statuscode()] += 1
            counts[source] += 1
    os.replace(tmp, out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return {
        "out": str(out),
        "response_records": len(order),
        "requested": pages,
        "seed": seed,
        "mix": mix,
        "pool_pages": len(everything),
        "bytes": out.stat().st_size,
        "sha256": digest,
        "by_source": dict(counts),
        "by_http_status": dict(sorted(statuses.items())),
    }


def pool_pages(data: Path, read_section: dict) -> list:
    """Every page of the pool, once each, as the filter stage reads them (refinedweb's `Page`s, in order)."""
    import tempfile

    from refinedweb.stages.read import Page, ReadConfig, iter_pages

    with tempfile.TemporaryDirectory() as tmp:
        warc = Path(tmp) / "pool.warc.gz"
        build(warc, 10**9, data)
        with open(warc, "rb") as fh:
            return [p for p in iter_pages(fh, ReadConfig.from_config(read_section)) if isinstance(p, Page)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/bench.warc.gz"))
    ap.add_argument("--pages", type=int, default=1500, help="number of response records (default 1500)")
    ap.add_argument("--seed", type=int, default=None,
                    help="shuffle the pool with this seed (repeating it in new orders past its size); "
                         "default: the pages in source order, without repeats")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data root (default /work/shared/data)")
    ap.add_argument("--mix", choices=MIXES, default="uniform",
                    help="with --seed: uniform (each page as often), big (drawn by size) or news (no trafilatura-eval page)")
    args = ap.parse_args(argv)
    if not (args.data / "extraction").is_dir():
        print(f"error: {args.data} has no extraction/ folder (see MANIFEST.md)", file=sys.stderr)
        return 2
    summary = build(args.out, args.pages, args.data, args.seed, args.mix)
    if summary["response_records"] < args.pages:
        print(f"warning: only {summary['response_records']} HTML pages available", file=sys.stderr)
    for source, n in summary["by_source"].items():
        print(f"{n:6d}  {source}")
    print(f"{summary['response_records']:6d}  total response records")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
