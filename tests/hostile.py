"""A set of hostile WARC inputs, written from scratch for the reliability tests (no third-party data).

Each builder writes one file and returns what a correct reader must report for it. Records are built
as raw bytes so that they can lie (wrong Content-Length, bombs, wrong charsets), which warcio's writer
would not allow.
"""

from __future__ import annotations

import gzip
import os
import random
import zlib
from pathlib import Path

ENGLISH = (
    "The river valley was settled by farmers who grew wheat and barley on the terraces above the water. "
    "Over the centuries the village that grew up there became known for its mills, which used the steady "
    "current to grind grain for the whole region. Today the old mill houses have been turned into a museum "
    "that tells the story of the families who worked them, and visitors can walk along the canal paths to see "
    "how the water was led from the river to the wheels. The museum is open every day except Monday, and the "
    "guided tours in the summer months are popular with schools and with people who have come to walk in the "
    "hills around the valley. "
)


def html_page(title: str, paragraphs: int = 4, body: str | None = None) -> str:
    text = body if body is not None else "".join(f"<p>{ENGLISH}</p>\n" for _ in range(paragraphs))
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1>\n{text}</article></body></html>")


def warc_record(url: str, payload: bytes, *, rec_type: str = "response", record_id: str | None = None,
                http_headers: list[tuple[str, str]] | None = None, declared_length: int | None = None,
                status: str = "200 OK") -> bytes:
    """One WARC record as bytes. `declared_length` overrides the true Content-Length (a lying record)."""
    if rec_type == "response":
        headers = http_headers if http_headers is not None else [("Content-Type", "text/html; charset=utf-8")]
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        block = head.encode("latin-1") + payload
        content_type = "application/http; msgtype=response"
    elif rec_type == "request":
        block = f"GET / HTTP/1.1\r\nHost: {url.split('/')[2] if '//' in url else 'x'}\r\n\r\n".encode()
        content_type = "application/http; msgtype=request"
    else:
        block = payload
        content_type = "application/warc-fields"
    length = len(block) if declared_length is None else declared_length
    rid = record_id or f"<urn:uuid:{random.Random(url + rec_type).getrandbits(128):032x}>"
    header = (f"WARC/1.0\r\nWARC-Type: {rec_type}\r\nWARC-Record-ID: {rid}\r\n"
              f"WARC-Date: 2023-01-01T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
              f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n")
    return header.encode("utf-8") + block + b"\r\n\r\n"


def gz_members(records: list[bytes]) -> bytes:
    """A WARC.gz: one gzip member per record, as CommonCrawl writes them."""
    return b"".join(gzip.compress(r, compresslevel=6) for r in records)


def good(url: str) -> bytes:
    return warc_record(url, html_page(url.rsplit("/", 1)[-1] or "page").encode())


def build(folder: Path) -> dict[str, dict]:
    """Write every hostile file into `folder`; returns name -> expectations for the tests."""
    folder.mkdir(parents=True, exist_ok=True)
    expect: dict[str, dict] = {}

    def write(name: str, data: bytes, **expectation) -> None:
        (folder / name).write_bytes(data)
        expect[name] = expectation

    # 1. a gzip stream cut in the middle of a member: the records before the cut are read
    whole = gz_members([good(f"https://example.org/cut/{i}") for i in range(6)])
    write("truncated.warc.gz", whole[: int(len(whole) * 0.6)], records=4, kept=3,
          notes={"truncated_record": 1, "truncated_input": 1})

    # 2. Content-Length lies: too small in the middle (the rest of the block looks like garbage to the
    # parser), too large at the end (the record runs past the end of the file)
    lies = [good("https://example.org/lie/before"),
            warc_record("https://example.org/lie/short", html_page("short").encode(), declared_length=40),
            good("https://example.org/lie/after"),
            warc_record("https://example.org/lie/long", html_page("long").encode(), declared_length=10_000_000)]
    write("content_length_lies.warc", b"".join(lies), records=2, kept=1, dropped={"read:empty_body": 1},
          notes={"malformed_input": 1})
    write("content_length_lies.warc.gz", gz_members(lies), records=2, kept=1, dropped={"read:empty_body": 1},
          notes={"malformed_input": 1})

    # 3. a 50 MB HTML page (gzip makes it small on disk)
    big = html_page("big", body="<p>" + ("word " * 10_000_000) + "</p>").encode()
    write("page_50mb.warc.gz", gz_members([warc_record("https://example.org/big", big), good("https://example.org/ok")]),
          records=2, kept=1, dropped={"read:body_too_large": 1})

    # 4. decompression bombs in the HTTP body: 1 GB of zeros behind Content-Encoding gzip / deflate
    zeros = b"\0" * (1 << 20)
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)     # gzip container
    gz_bomb = b"".join(bomb.compress(zeros) for _ in range(1024)) + bomb.flush()
    deflater = zlib.compressobj(9, zlib.DEFLATED, 15)  # zlib container ("deflate" as servers send it)
    deflate_bomb = b"".join(deflater.compress(zeros) for _ in range(1024)) + deflater.flush()
    write("decompression_bombs.warc.gz", gz_members([
        warc_record("https://example.org/bomb.gz", gz_bomb,
                    http_headers=[("Content-Type", "text/html"), ("Content-Encoding", "gzip")]),
        warc_record("https://example.org/bomb.deflate", deflate_bomb,
                    http_headers=[("Content-Type", "text/html"), ("Content-Encoding", "deflate")]),
        good("https://example.org/after-bombs")]),
        records=3, kept=1, dropped={"read:body_too_large": 2})

    # 5. 100,000 nested <div>s around real text
    nested = ("<html><body>" + "<div>" * 100_000 + f"<p>{ENGLISH}</p>" + "</div>" * 100_000 + "</body></html>").encode()
    write("nested_divs.warc.gz", gz_members([warc_record("https://example.org/nested", nested),
                                             good("https://example.org/after-nested")]), records=2, kept=1,
          dropped={"extract:too_deep": 1})

    # 6. binary data labelled text/html
    noise = random.Random(5).randbytes(200_000)
    write("binary_as_html.warc.gz", gz_members([
        warc_record("https://example.org/image.html", b"\x89PNG\r\n\x1a\n" + noise),
        warc_record("https://example.org/zip.html", b"PK\x03\x04" + noise),
        good("https://example.org/after-binary")]), records=3, kept=1, dropped={"read:binary": 2})

    # 7. invalid UTF-8 and wrong declared charsets: decoded anyway, never a crash
    text = html_page("charsets").encode()
    cp1252 = html_page("café crème brûlée naïve façade").replace('charset="utf-8"', 'charset="windows-1252"').encode("cp1252")
    write("bad_charsets.warc.gz", gz_members([
        warc_record("https://example.org/invalid-utf8", text.replace(b"river", b"riv\xff\xfer")),
        warc_record("https://example.org/declared-sjis", cp1252,
                    http_headers=[("Content-Type", "text/html; charset=shift_jis")]),
        warc_record("https://example.org/bogus-charset", text,
                    http_headers=[("Content-Type", "text/html; charset=x-no-such-charset")]),
        warc_record("https://example.org/utf16-no-bom", html_page("utf16").encode("utf-16-le"),
                    http_headers=[("Content-Type", "text/html; charset=utf-8")])]),
        records=4, kept=4)

    # 8. URLs: malformed, IDN, 4 kB long; record ids that look like paths
    write("hostile_urls.warc.gz", gz_members([
        warc_record("http://[::1", html_page("malformed").encode()),
        warc_record("ht!tp://no scheme at all/", html_page("bad scheme").encode()),
        warc_record("", html_page("empty url").encode()),
        warc_record("https://bücher.example/путь/страница?q=ü", html_page("idn").encode()),
        warc_record("https://example.org/" + "a" * 4096, html_page("long url").encode()),
        warc_record("https://example.org/traversal", html_page("traversal").encode(),
                    record_id="../../../../tmp/refinedweb-escape"),
        warc_record("https://example.org/abs", html_page("absolute id").encode(), record_id="/etc/passwd")]),
        # warcio parses HTTP headers only under an http(s) target URI
        records=7, kept=4, dropped={"url_filter:malformed_url": 1, "read:no_http_headers": 2})

    # 8b. a body that claims Content-Encoding gzip but is not gzip, and one whose gzip stream breaks off
    broken = gzip.compress(html_page("broken").encode())
    write("bad_content_encoding.warc.gz", gz_members([
        warc_record("https://example.org/not-gzip", html_page("not gzip").encode(),
                    http_headers=[("Content-Type", "text/html"), ("Content-Encoding", "gzip")]),
        warc_record("https://example.org/gzip-cut", broken[: len(broken) // 2],
                    http_headers=[("Content-Type", "text/html"), ("Content-Encoding", "gzip")]),
        good("https://example.org/after-bad-encoding")]), records=3, kept=2,
        dropped={"quality:too_few_words": 1})   # warcio reads a non-gzip body as is; the cut one is a stub

    # 9. an empty file, and a gzip file holding nothing
    write("empty.warc.gz", b"", records=0, kept=0)
    write("empty_member.warc.gz", gzip.compress(b""), records=0, kept=0)

    # 10. only request records (not records of the document funnel: noted, not counted)
    write("requests_only.warc.gz", gz_members([warc_record(f"https://example.org/r/{i}", b"", rec_type="request")
                                               for i in range(20)]), records=20, kept=0, dropped={"read:record_request": 20})
    return expect


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")
    for name in build(target):
        print(target / name, os.path.getsize(target / name))
