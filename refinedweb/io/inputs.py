"""Inputs: expanding --input URIs into a list of files, and opening one as a byte stream.

Accepted, mixable: local files, directories and (quoted) globs; `s3://bucket/key` and S3 globs;
`http(s)://` URLs; `*.paths` / `*.paths.gz` listings (one path per line, relative to
`fetch.base_uri`); `cc:CRAWL-ID` (CommonCrawl's `warc.paths.gz` of that crawl).
"""

from __future__ import annotations

import glob
import gzip
import os
import random
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from ..errors import UserError
from .remote import (
    FetchConfig,
    FetchError,
    crawl_listing_uri,
    is_remote,
    iter_listing,
    list_s3,
    open_remote,
    read_remote_bytes,
    redact,
    scheme_of,
)

WARC_SUFFIXES = (".warc.gz", ".warc", ".arc.gz", ".arc")
PARQUET_SUFFIXES = (".parquet",)
LISTING_SUFFIXES = (".paths", ".paths.gz")


def _has_magic(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _read_listing(uri: str, cfg: FetchConfig) -> list[str]:
    try:
        raw = read_remote_bytes(uri, cfg) if is_remote(uri) else open(os.path.expanduser(uri), "rb").read()
    except FileNotFoundError:
        raise UserError(f"input not found: {uri}") from None
    except FetchError as exc:
        raise UserError(f"cannot read listing {redact(uri)}: {exc}") from None
    if uri.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            raise UserError(f"listing is not valid gzip: {redact(uri)}") from None
    files = list(iter_listing(raw.decode("utf-8", "replace"), cfg.base_uri))
    if not files:
        raise UserError(f"listing is empty: {redact(uri)}")
    return files


def _expand_local(uri: str, suffixes: tuple[str, ...]) -> list[str]:
    path = os.path.expanduser(uri.removeprefix("file://"))
    if _has_magic(path):
        matches = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        if not matches:
            raise UserError(f"input glob matches no files: {uri}")
    elif os.path.isdir(path):
        matches = sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files if f.endswith(suffixes))
        if not matches:
            raise UserError(f"input directory has no {'/'.join(suffixes)} files: {uri}")
    elif os.path.isfile(path):
        matches = [path]
    else:
        raise UserError(f"input not found: {uri}")
    return [os.path.abspath(m) for m in matches]


def expand_inputs(uris: list[str], suffixes: tuple[str, ...] = WARC_SUFFIXES, limit: int | None = None,
                  fetch: FetchConfig | None = None) -> list[str]:
    """All --input URIs → a de-duplicated list of files, in input order (each group sorted).

    A name that matches nothing is a user error: a typo must not become an empty, "successful" run.
    `limit` takes the first N; `fetch.sample` a seeded random N instead.
    """
    fetch = fetch or FetchConfig()
    out: list[str] = []
    seen: set[str] = set()
    for uri in uris:
        scheme = scheme_of(uri)
        if uri.startswith("cc:"):
            matches = _read_listing(crawl_listing_uri(uri[3:], fetch.base_uri), fetch)
        elif uri.endswith(LISTING_SUFFIXES):
            matches = _read_listing(uri, fetch)
        elif scheme == "s3":
            matches = list_s3(uri, fetch) if _has_magic(uri) else [uri]
            if not matches:
                raise UserError(f"input glob matches no S3 objects: {redact(uri)}")
        elif scheme in ("http", "https"):
            matches = [uri]
        elif scheme in ("", "file"):
            matches = _expand_local(uri, suffixes)
        else:
            raise UserError(f"unsupported input URI scheme '{scheme}://' in {redact(uri)} "
                            "(supported: local paths and globs, s3://, http(s)://, cc:CRAWL-ID, *.paths.gz)")
        for match in matches:
            if match not in seen:
                seen.add(match)
                out.append(match)
    if fetch.sample is not None and fetch.sample < len(out):
        out = sorted(random.Random(fetch.seed).sample(out, fetch.sample), key=out.index)
    if limit is not None:
        out = out[: max(0, limit)]
    return out


@contextmanager
def open_input(uri: str, fetch: FetchConfig | None = None) -> Iterator[BinaryIO]:
    if is_remote(uri):
        stream = open_remote(uri, fetch or FetchConfig())
        try:
            yield stream
        finally:
            stream.close()
        return
    with open(uri.removeprefix("file://"), "rb", buffering=1 << 20) as fh:
        yield fh
