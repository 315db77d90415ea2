"""URL dedup's keys (RW §3.3): a URL is keyed by `refinedweb.urls.dedup_key` (the project's one normaliser:
host as the URL filter normalises it, a non-default port, path without a trailing slash, query) hashed to
64 bits. A missing URL (null, empty, blank) has no key. The URLs of other runs: `seen_store.py`.
"""

from __future__ import annotations

import numpy as np
import xxhash

from ...urls import dedup_key


def url_hash(url: str) -> int:
    return xxhash.xxh3_64_intdigest(dedup_key(url).encode("utf-8", "surrogatepass"))


def has_url(urls) -> np.ndarray:
    """Which of `urls` are URLs: a null, empty or blank one is missing and has no dedup key (missing URLs are
    not one URL, so documents without one are never each other's duplicates)."""
    return np.fromiter((bool(u and not u.isspace()) for u in urls), dtype=bool, count=len(urls))


def url_hashes(urls) -> np.ndarray:
    """Hashes of URLs that are present (see `has_url`)."""
    return np.fromiter((url_hash(u) for u in urls), dtype=np.uint64, count=len(urls))
