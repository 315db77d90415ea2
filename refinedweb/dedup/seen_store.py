"""The seen-URL store (`dedup.url.seen`): the URLs that earlier runs (earlier dumps) kept, so that URL dedup
also removes a page another run already has.

A store is a folder, local or `s3://`. Every run that writes to it has its own *contribution*, named after its
output folder (`run_name`): a later attempt of that run (`--overwrite`, a restart after changed inputs, a resume
after a crash) replaces its own contribution and never reads it, so it can never remove its own documents. A run
reads the contributions of the other runs as they are when it plans its work; the plan records them, so a
resumed run reads exactly the same ones.

Layout under the store:
  runs/<run>.json                    the contribution's record, written last: its attempt, ranges and URLs
  runs/<run>/<attempt>/r=NNNNN.bin   sorted unique 64-bit URL hashes of key range NNNNN (raw little-endian)
  runs/<run>/<attempt>/index.npz     every STRIDE-th hash with its position: where any key range starts
The hashes are cut into key ranges (`shuffle.key_range`) and URL dedup's buckets are key ranges too, so a
bucket task reads only its slice of each contribution (ranged reads of at most `chunk_keys` hashes at a time):
its memory does not grow with the store, and no file is larger than one range (each upload is multipart above
64 MB, far below S3's 5 GB single-PUT limit).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import numpy as np

from ..errors import UserError
from ..io.remote import redact
from ..io.storage import open_storage, safe_name
from .shuffle import pack_array, range_start, unpack_array

STRIDE = 1024            # index every STRIDE-th hash: a bucket's slice reads at most 2 x 8 KB it does not need
RECORDS = "runs"
KEY = np.dtype("<u8")


def run_name(output_uri: str) -> str:
    """The contribution's name: the output folder's name (readable) and a hash of its full URI (unique)."""
    import hashlib

    uri = output_uri.rstrip("/")
    stem = safe_name(uri.rsplit("/", 2)[-2] if uri.endswith("/dedup") else uri.rsplit("/", 1)[-1], 60)
    return f"{stem}-{hashlib.sha1(uri.encode('utf-8')).hexdigest()[:12]}"


def open_store(uri: str, fetch=None):
    """The store's storage. A path that is a file is the single-array store of refinedweb 0.1: refused."""
    local = None if uri.startswith("s3://") else os.path.expanduser(uri.removeprefix("file://"))
    if (local is not None and os.path.isfile(local)) or uri.rstrip("/").endswith(".npy"):
        raise UserError(f"dedup.url.seen={redact(uri)} names a file: the seen-URL store is a folder now (one "
                        "contribution per run); point dedup.url.seen at a folder, e.g. the same path without .npy")
    storage = open_storage(uri, fetch)
    if local is None and storage.prefix and storage.exists(""):        # a store at a bucket's root has no key
        raise UserError(f"dedup.url.seen={redact(uri)} is an object, not a folder: point it at a prefix ending in /")
    return storage


def snapshot(store, own: str) -> list[dict[str, Any]]:
    """The records of every other run's contribution (one LIST, a GET each): what this run reads."""
    out = []
    for relpath in store.list(RECORDS, "*.json"):
        record = json.loads(store.read_text(relpath) or "null")
        if record and record.get("run") != own:
            out.append(record)
    return sorted(out, key=lambda r: r["run"])


def plan(store_uri: str, output_uri: str, fetch=None) -> dict[str, Any]:
    """What a fresh run records in its plan: the store, its own name, a new attempt, the contributions it reads."""
    run = run_name(output_uri)
    read = snapshot(open_store(store_uri, fetch), run)
    return {"store": store_uri, "run": run, "attempt": uuid.uuid4().hex[:12], "read": read,
            "urls_read": sum(int(r["urls"]) for r in read)}


def _folder(record: dict[str, Any]) -> str:
    return f"{RECORDS}/{safe_name(record['run'], 120)}/{record['attempt']}"


def bucket_slices(store, read: list[dict[str, Any]], buckets: int) -> list[list[tuple[str, int, int]]]:
    """For every URL bucket (a key range of `buckets`), the slices (range file, first hash, hashes) of the
    contributions `read` that can hold its keys. On the driver, from the contributions' indexes."""
    bounds = [range_start(b, buckets) for b in range(buckets + 1)]
    slices: list[list[tuple[str, int, int]]] = [[] for _ in range(buckets)]
    for record in read:
        folder = _folder(record)
        try:
            with store.local_copy(f"{folder}/index.npz") as path, np.load(path) as index:
                samples, positions, counts = index["samples"], index["positions"], index["counts"]
        except Exception as exc:                      # noqa: BLE001 - a missing index, whatever the storage says
            raise UserError(f"the seen-URL store changed under this run: {record['run']}'s contribution "
                            f"({folder}) cannot be read ({type(exc).__name__}); use --overwrite to start the "
                            "dedup stage over") from None
        total = int(counts.sum())
        if not total:
            continue
        starts = np.concatenate(([0], np.cumsum(counts)))
        lo_hi = np.array([min(b, (1 << 64) - 1) for b in bounds], dtype=np.uint64)
        first = np.searchsorted(samples, lo_hi, side="right") - 1
        begin = np.where(first >= 0, positions[np.maximum(first, 0)], 0)
        after = np.searchsorted(samples, lo_hi, side="left")
        end = np.where(after < len(samples), positions[np.minimum(after, len(samples) - 1)], total)
        end[-1] = total
        for b in range(buckets):
            a, z = int(begin[b]), int(end[b + 1])
            for r in np.flatnonzero((starts[:-1] < z) & (starts[1:] > a)).tolist():
                lo, hi = max(a, int(starts[r])), min(z, int(starts[r + 1]))
                slices[b].append((f"{folder}/r={r:05d}.bin", lo - int(starts[r]), hi - lo))
    return slices


def seen_in(store, slices: list[tuple[str, int, int]], keys: np.ndarray, lo: int, hi: int,
            keep=None, chunk_keys: int = 1 << 22) -> np.ndarray:
    """Which of the sorted `keys` are in the slices' hashes within [lo, hi) (and `keep(hashes)`, a pass's
    share of the key space): the slices are read `chunk_keys` hashes at a time."""
    found = np.zeros(len(keys), dtype=bool)
    if not len(keys):
        return found
    for relpath, first, count in slices:
        for at in range(first, first + count, chunk_keys):
            n = min(chunk_keys, first + count - at)
            with store.local_range(relpath, at * KEY.itemsize, n * KEY.itemsize) as (path, offset):
                hashes = np.fromfile(path, dtype=KEY, count=n, offset=offset)
            hashes = hashes[(hashes >= np.uint64(lo)) & (hashes <= np.uint64(hi - 1))]
            if keep is not None:
                hashes = hashes[keep(hashes)]
            if len(hashes):
                pos = np.minimum(np.searchsorted(hashes, keys), len(hashes) - 1)
                found |= hashes[pos] == keys
            del hashes
    return found


# ---------------------------------------------------------------------------------- writing a contribution

def write_range(store, seen: dict[str, Any], index: int, hashes: np.ndarray) -> dict[str, Any]:
    """Commit one range file of this run's contribution; its count and index samples. `hashes` is sorted in
    place (one copy for the unique ones, not np.unique's several)."""
    hashes.sort()
    if len(hashes):
        hashes = hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))]
    relpath = f"{_folder(seen)}/r={index:05d}.bin"
    tmp = store.temp_path(relpath)
    try:
        with open(tmp, "wb") as fh:
            hashes.tofile(fh)
        store.commit(tmp, relpath)
    except BaseException:
        store.discard(tmp)
        raise
    picks = np.arange(0, len(hashes), STRIDE)
    return {"range": index, "urls": int(len(hashes)), "samples": pack_array(hashes[picks])}


def commit(store, seen: dict[str, Any], ranges: list[dict[str, Any]], output: str) -> dict[str, Any]:
    """Make the contribution visible: its index, then its record (the commit point), then the run's older
    attempts are deleted. Idempotent, so a re-run after a crash anywhere here just does it again."""
    folder = _folder(seen)
    ranges = sorted(ranges, key=lambda r: r["range"])
    counts = np.array([r["urls"] for r in ranges], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)))[:-1]
    picked = [unpack_array(r["samples"]) for r in ranges]
    samples = np.concatenate(picked) if picked else np.empty(0, KEY)
    positions = np.concatenate([int(start) + np.arange(len(p), dtype=np.int64) * STRIDE
                                for start, p in zip(starts, picked)]) if picked else np.empty(0, np.int64)
    tmp = store.temp_path(f"{folder}/index.npz")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, samples=samples, positions=positions, counts=counts)
        store.commit(tmp, f"{folder}/index.npz")
    except BaseException:
        store.discard(tmp)
        raise
    record = {"run": seen["run"], "attempt": seen["attempt"], "output": redact(output), "ranges": len(ranges),
              "urls": int(counts.sum()), "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    old = json.loads(store.read_text(f"{RECORDS}/{safe_name(seen['run'], 120)}.json") or "null")
    if not old or old.get("attempt") != seen["attempt"] or old.get("urls") != record["urls"]:
        store.write_json(f"{RECORDS}/{safe_name(seen['run'], 120)}.json", record)
    for attempt in store.list_folders(f"{RECORDS}/{safe_name(seen['run'], 120)}"):
        if attempt.rsplit("/", 1)[-1] != seen["attempt"]:
            store.delete_tree(attempt)
    return record
