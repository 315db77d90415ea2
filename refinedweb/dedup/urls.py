"""URL deduplication (RW §3.3): one document per normalised URL, across the input and across runs.

URLs are keyed by `refinedweb.urls.dedup_key` (the project's one normaliser: host as the URL filter
normalises it, a non-default port, path without a trailing slash, query) and hashed to 64 bits. The store of URLs seen in earlier runs
(earlier dumps) is one sorted uint64 array on disk, memory-mapped when read, so checking a part
costs O(log n) page reads per URL rather than loading the store.
"""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np
import xxhash

from ..urls import dedup_key


def url_hash(url: str) -> int:
    return xxhash.xxh3_64_intdigest(dedup_key(url).encode("utf-8", "surrogatepass"))


def url_hashes(urls) -> np.ndarray:
    return np.fromiter((url_hash(u or "") for u in urls), dtype=np.uint64, count=len(urls))


class SeenUrls:
    """Sorted uint64 hashes of URLs kept by earlier runs; empty when the store does not exist yet.
    The store is a `.npy` file at a local path or an s3:// URI (so that every node of a cluster reads it)."""

    def __init__(self, path: str | None, fetch=None):
        self.path = path
        self.hashes = _load_store(path, fetch) if path else np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        if not len(self.hashes) or not len(hashes):
            return np.zeros(len(hashes), dtype=bool)
        pos = np.searchsorted(self.hashes, hashes)
        pos = np.minimum(pos, len(self.hashes) - 1)
        return np.asarray(self.hashes[pos]) == hashes


def _load_store(path: str, fetch=None) -> np.ndarray:
    if path.startswith("s3://"):
        from ..io.remote import FetchConfig, s3_client, split_s3

        client = s3_client(fetch or FetchConfig())
        bucket, key = split_s3(path)
        try:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return np.empty(0, dtype=np.uint64)
        return np.load(io.BytesIO(data))
    local = os.path.expanduser(path)
    return np.load(local, mmap_mode="r") if os.path.exists(local) else np.empty(0, dtype=np.uint64)


def update_seen_store(path: str, new_hash_arrays: list[np.ndarray], fetch=None) -> int:
    """Merge new hashes into the store, atomically (temp file + rename, or one S3 PUT). Returns its size."""
    old = _load_store(path, fetch)
    merged = np.union1d(np.asarray(old, dtype=np.uint64),
                        np.concatenate(new_hash_arrays).astype(np.uint64) if new_hash_arrays else np.empty(0, np.uint64))
    if path.startswith("s3://"):
        from ..io.remote import FetchConfig, s3_client, split_s3

        buffer = io.BytesIO()
        np.save(buffer, merged)
        bucket, key = split_s3(path)
        s3_client(fetch or FetchConfig()).put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        return int(merged.shape[0])
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".seen-", suffix=".npy", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, merged)
    os.replace(tmp, path)
    return int(merged.shape[0])
