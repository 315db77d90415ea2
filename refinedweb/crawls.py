"""Which CommonCrawl crawls exist, and which of them an output root has not processed yet (for the
incremental job). A crawl is processed when `<root>/<crawl id>/dedup/.refinedweb/manifest.json` exists: the
manifest is written last, so a crawl whose run crashed is still pending and is resumed."""

from __future__ import annotations

import json
import os
import re

from .errors import UserError
from .io.manifest import MANIFEST
from .io.remote import FetchConfig, is_remote, read_remote_bytes, redact, s3_client, split_s3

CRAWL_ID = re.compile(r"^CC-MAIN-\d{4}-\d{2}$")
COLLINFO = "https://index.commoncrawl.org/collinfo.json"


def list_crawls(fetch: FetchConfig, collinfo: str | None = None) -> list[str]:
    """Crawl ids, oldest first: from a `collinfo.json` (CommonCrawl's index of crawls), or else from the
    `crawl-data/` folders under `fetch.base_uri` (S3 or a local folder)."""
    if collinfo:
        try:
            raw = read_remote_bytes(collinfo, fetch) if is_remote(collinfo) else open(os.path.expanduser(collinfo), "rb").read()
            ids = [entry["id"] for entry in json.loads(raw)]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read the crawl list {redact(collinfo)}: {type(exc).__name__}") from None
    else:
        base = fetch.base_uri.rstrip("/") + "/crawl-data/"
        if base.startswith("s3://"):
            bucket, prefix = split_s3(base)
            ids = []
            for page in s3_client(fetch).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                ids += [p["Prefix"][len(prefix):].strip("/") for p in page.get("CommonPrefixes", [])]
        elif is_remote(base):
            raise UserError(f"cannot list {redact(base)} over HTTP: give --collinfo (e.g. {COLLINFO})")
        else:
            folder = os.path.expanduser(base.removeprefix("file://"))
            ids = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted({i for i in ids if CRAWL_ID.match(i)}, key=_age)


def _age(crawl_id: str) -> tuple[int, int]:
    year, week = crawl_id.split("-")[2:4]
    return int(year), int(week)


def pending(crawls: list[str], root_storage) -> list[str]:
    return [c for c in crawls if not root_storage.exists(f"{c}/dedup/{MANIFEST}")]
