"""Read: stream WARC / ARC records and yield HTML responses as decoded documents (RW §3.1).

Never holds a whole file in memory: records are parsed one at a time from a stream. Every record read
is reported to the caller, either as a `Page` (an HTML response to process) or as a `Skip` with a
reason, so that records read = kept + dropped + errors can be checked per input file.
A truncated or corrupt gzip stream ends the file with what was read so far and one `Skip`
(`truncated_input`), instead of failing the task; so does a record that cannot be parsed, such as one
whose Content-Length lies (`malformed_input`): without a valid length the next record cannot be found.
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import charset_normalizer
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from ..settings import convert, from_section, setting


@dataclass(frozen=True, slots=True)
class ReadConfig:
    content_types: tuple[str, ...] = setting(parse=lambda v, key: tuple(t.lower() for t in convert(v, "tuple[str, ...]", key)))
    max_body_bytes: int = setting(min=1)
    sniff_html: bool = setting()

    @classmethod
    def from_config(cls, section: dict) -> "ReadConfig":
        return from_section(cls, section, "read")


@dataclass(slots=True)
class Page:
    record_id: str
    url: str
    date: str
    html: str
    charset: str
    raw_bytes: int
    truncated: bool = False   # the record's body ended before its Content-Length (clipped file)


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str            # record_<type> | no_http_headers | http_status | not_html | binary | body_too_large | empty_body | truncated_input | malformed_input | bad_record
    record_id: str = ""
    url: str = ""
    counts_as_record: bool = True   # False for `truncated_input` / `malformed_input`: not records of their own
    detail: str = ""                # the exception behind a bad_record / truncated_input / malformed_input


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.IGNORECASE)
_HTML_SNIFF = re.compile(rb"<(!doctype\s+html|html|head|body|title|div|p)[\s>]", re.IGNORECASE)
_SINGLE_BYTE_LATIN = {"latin-1", "iso8859-1", "cp1252", "ascii", "iso8859-15"}


def _canonical_codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "ignore")
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None


def _header_charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value
    return None


def decode_html(body: bytes, content_type: str = "") -> tuple[str, str]:
    """Decode an HTML body: the HTTP header's charset, then `<meta>`, then detection.

    A declared charset that does not decode the bytes is ignored, never a reason to drop the page.
    Bytes that are valid UTF-8 but declared as a single-byte Latin charset are read as UTF-8 (a common
    server misconfiguration; random Latin-1 text with high bytes is almost never valid UTF-8).
    """
    candidates: list[str] = []
    for declared in (_header_charset(content_type), None):
        codec = _canonical_codec(declared)
        if codec:
            candidates.append(codec)
    match = _META_CHARSET.search(body, 0, 4096)
    if match:
        codec = _canonical_codec(match.group(1))
        if codec:
            candidates.append(codec)
    for codec in candidates:
        if codec in _SINGLE_BYTE_LATIN and not body.isascii():
            try:
                return body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                pass
        try:
            return body.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(body[:65536]).best()
    codec = _canonical_codec(best.encoding) if best is not None else None
    if codec:
        return body.decode(codec, errors="replace"), codec
    return body.decode("utf-8", errors="replace"), "utf-8-replace"


_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"


def looks_binary(body: bytes, sample: int = 4096) -> bool:
    """Binary data labelled as HTML (images, archives): NUL bytes or many control bytes in the first 4 kB.
    UTF-16 pages (NULs between ASCII letters) are not binary: they carry a BOM or decode as UTF-16."""
    head = body[:sample]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    controls = len(head) - len(head.translate(None, _CONTROL))
    if b"\0" in head and head.count(b"\0") * 3 >= len(head) and _utf16_text(head):
        return False
    return controls > max(8, len(head) // 100)


def _utf16_text(head: bytes) -> bool:
    for codec in ("utf-16-le", "utf-16-be"):
        try:
            text = head[: len(head) // 2 * 2].decode(codec)
        except UnicodeDecodeError:
            continue
        if sum(ch.isprintable() or ch.isspace() for ch in text) >= 0.95 * len(text):
            return True
    return False


def _is_html(content_type: str, body_start: bytes, cfg: ReadConfig) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in cfg.content_types:
        return True
    if cfg.sniff_html and mime in ("", "unknown", "application/octet-stream", "text/plain"):
        return bool(_HTML_SNIFF.search(body_start[:2048]))
    return False


def iter_pages(stream: BinaryIO, cfg: ReadConfig) -> Iterator[Page | Skip]:
    """Yield one item per record of `stream` (a WARC, WARC.gz or ARC(.gz) byte stream)."""
    try:
        iterator = ArchiveIterator(stream, arc2warc=True, check_digests=False)
        records = iter(iterator)
        cut = _watch_for_cut(iterator.reader)
    except ArchiveLoadFailed:
        yield Skip("truncated_input", counts_as_record=False)
        return
    while True:
        try:
            record = next(records)
        except StopIteration:
            if cut["inside_member"]:
                yield Skip("truncated_input", counts_as_record=False, detail="the file ends inside a gzip member")
            return
        except (ArchiveLoadFailed, AttributeError, TypeError) as exc:
            # a record that does not parse (e.g. a Content-Length that lies; warcio raises AttributeError on a response
            # whose header block lacks WARC-Target-URI, as a file cut inside it does): the rest cannot be framed
            yield Skip("malformed_input", counts_as_record=False, detail=reason_detail(exc))
            return
        except (EOFError, zlib.error, OSError, ValueError) as exc:
            yield Skip("truncated_input", counts_as_record=False, detail=reason_detail(exc))
            return
        try:
            item = _page_from_record(record, cfg)
        except Exception as exc:
            # One record that cannot be decoded (e.g. its body is cut off, or its HTTP headers are
            # garbage) is counted and skipped; if the stream itself is broken, the next step says so.
            yield Skip("bad_record", _record_id(record), detail=reason_detail(exc))
            continue
        yield item


def _watch_for_cut(reader) -> dict:
    """warcio ends quietly when a gzip file stops inside a member (in a body, a header block, or between the
    records of a member): note whether its last decompressor had reached the member's end when it is closed."""
    cut = {"inside_member": False}
    close = reader.close_decompressor

    def close_decompressor():
        decompressor = reader.decompressor
        cut["inside_member"] = decompressor is not None and not decompressor.eof
        close()

    reader.close_decompressor = close_decompressor
    return cut


def _record_id(record) -> str:
    try:
        return record.rec_headers.get_header("WARC-Record-ID") or ""
    except Exception:
        return ""


def reason_detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _page_from_record(record, cfg: ReadConfig) -> Page | Skip:
    headers = record.rec_headers
    record_id = headers.get_header("WARC-Record-ID") or ""
    url = headers.get_header("WARC-Target-URI") or ""
    if record.rec_type != "response":
        return Skip(f"record_{record.rec_type or 'unknown'}", record_id, url)
    http = record.http_headers
    if http is None:
        return Skip("no_http_headers", record_id, url)
    status = http.get_statuscode() or ""
    if not status.startswith("2"):
        return Skip("http_status", record_id, url)
    content_type = http.get_header("Content-Type") or ""
    stream = record.content_stream()
    body = stream.read(cfg.max_body_bytes + 1)
    if len(body) > cfg.max_body_bytes:
        # No draining here: the iterator skips the rest of the *raw* record itself, so a decompression
        # bomb (Content-Encoding: gzip/deflate) is never inflated past max_body_bytes.
        return Skip("body_too_large", record_id, url)
    if not body.strip():
        return Skip("empty_body", record_id, url)
    if not _is_html(content_type, body, cfg):
        return Skip("not_html", record_id, url)
    if looks_binary(body):
        return Skip("binary", record_id, url)
    truncated = getattr(record.raw_stream, "limit", 0) > 0
    html, charset = decode_html(body, content_type)
    date = headers.get_header("WARC-Date") or ""
    return Page(record_id=record_id, url=url, date=date, html=html, charset=charset, raw_bytes=len(body),
                truncated=truncated)
